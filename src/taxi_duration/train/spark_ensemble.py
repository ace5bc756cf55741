"""The Spark search's ensemble: the best weighted average of two family winners, and the models it is made of.

`best_average` scores every pair of winners at each of `ENSEMBLE_WEIGHTS` in one pass over the validation
month; `averaged` is that average as one `PipelineModel`, and `renamed` names a single model's output
`prediction`, as the average's is.
"""

from __future__ import annotations

from pyspark.ml import PipelineModel
from pyspark.ml.feature import SQLTransformer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taxi_duration.features.definitions import TARGET
from taxi_duration.train.export import PREDICTION, mix_statement
from taxi_duration.train.spark_search import Candidate, last_stage

ENSEMBLE_WEIGHTS = (0.25, 0.5, 0.75)  # share of the tree model in the average


def averaged(a: PipelineModel, b: PipelineModel, weight: float) -> PipelineModel:
    """`a` and `b` in one model whose `prediction` is their average, `b` weighing `weight`."""
    pa, pb = last_stage(a).getPredictionCol(), last_stage(b).getPredictionCol()
    mix = SQLTransformer(statement=mix_statement(1 - weight, pa, weight, pb))
    return PipelineModel(stages=[a, b, mix])


def renamed(model: PipelineModel) -> PipelineModel:
    """`model` with its output column copied to `prediction`."""
    rename = SQLTransformer(statement=f"SELECT *, {last_stage(model).getPredictionCol()} AS {PREDICTION} FROM __THIS__")
    return PipelineModel(stages=[model, rename])


def best_average(winners: list[Candidate], validate: DataFrame) -> Candidate | None:
    """The weighted average of two family winners with the lowest validation RMSE, in one pass over the month."""
    if len(winners) < 2:
        return None
    scored = validate
    for w in winners:
        scored = w.model.transform(scored)
    col = {w.name: F.col(last_stage(w.model).getPredictionCol()) for w in winners}
    pairs = [(a, b, wt) for i, a in enumerate(winners) for b in winners[i + 1 :] for wt in ENSEMBLE_WEIGHTS]
    y = F.col(TARGET)
    errors = [
        F.sqrt(F.avg(F.pow((1 - wt) * col[a.name] + wt * col[b.name] - y, 2))).alias(f"e{i}")
        for i, (a, b, wt) in enumerate(pairs)
    ]
    row = scored.agg(*errors).first()
    assert row is not None
    i = min(range(len(pairs)), key=lambda k: row[f"e{k}"])
    a, b, wt = pairs[i]
    params = {a.name: a.params, b.name: b.params, f"{b.name}_weight": wt}
    return Candidate("ensemble", params, averaged(a.model, b.model, wt), float(row[f"e{i}"]), mix=(a, b, wt))
