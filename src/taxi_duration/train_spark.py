"""The big-data pipeline: MLlib pipelines trained on Spark DataFrames where they lie, never collected.

Candidates (linear regression and gradient-boosted trees, each over a small grid) are fitted concurrently
(`parallelism` Spark jobs at once, as `TrainValidationSplit` does) and judged on the validation month. The
best linear model and the best tree model are then averaged with a weight chosen on the same month, and
the average is kept only when it beats the best single model there.
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.feature import OneHotEncoder, SQLTransformer, StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor, LinearRegression
from pyspark.ml.tuning import ParamGridBuilder
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taxi_duration import schema as s
from taxi_duration.features import TARGET
from taxi_duration.spark import get_spark
from taxi_duration.train_local import columns

PREDICTION = "prediction"
ENSEMBLE_WEIGHTS = (0.25, 0.5, 0.75)  # share of the tree model in the average
# Strings with few values are indexed; zone ids stay numbers for trees (265 values would need 265 bins),
# and the zone pair (thousands of values) reaches trees through the store's pair statistics.
TREE_SKIPS = ("zone_pair",)
# Thousands of one-hot pairs are past the 4096 features MLlib solves exactly, and L-BFGS on the unregularized
# problem stops after a few iterations (RMSE 6.72 where scikit-learn's exact fit gets 6.04 on 2023-02); a
# tiny ridge on unscaled one-hot columns lets it converge (5.99).
LINEAR_FIT: dict[str, Any] = {"standardization": False, "regParam": 1e-4, "maxIter": 500}
GBT_PARAMS: dict[str, Any] = {"maxIter": 60, "stepSize": 0.1, "subsamplingRate": 0.8, "maxBins": 64}


@dataclass
class MllibPredictor:
    """A fitted MLlib `PipelineModel` whose output column is `prediction`."""

    model: PipelineModel
    kind: str = "mllib"

    def transform(self, frame: DataFrame) -> DataFrame:
        """Add `prediction` (minutes, never below zero) to a Spark frame of features."""
        out = self.model.transform(frame)
        return out.withColumn(PREDICTION, F.greatest(F.col(PREDICTION), F.lit(0.0)))

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Minutes for a pandas frame of features (ships it to Spark and back, in order)."""
        spark = get_spark()
        frame = spark.createDataFrame(features.assign(_row=np.arange(len(features))))
        out = self.transform(frame).select("_row", PREDICTION).toPandas().sort_values("_row")
        return out[PREDICTION].to_numpy(dtype=float)

    def save(self, path: Path) -> None:
        """Write the PipelineModel with MLlib's own writer."""
        self.model.write().save(str(path))

    @classmethod
    def load(cls, path: Path) -> MllibPredictor:
        """Read a folder written by `save` (starts a local Spark session if none is active)."""
        get_spark()
        return cls(PipelineModel.load(str(path)))


@dataclass
class Candidate:
    """One fitted model and its validation RMSE."""

    name: str
    params: dict[str, Any]
    model: PipelineModel
    rmse: float


@dataclass
class SparkTraining:
    """The chosen model, every candidate's score, and the tree model's feature importances."""

    chosen: MllibPredictor
    name: str
    params: dict[str, Any]
    candidates: list[Candidate]
    importances: dict[str, float]


def _stages(prefix: str, strings: list[str]) -> tuple[list[Any], list[str]]:
    indexed = [f"{prefix}_{c}_idx" for c in strings]
    stages: list[Any] = [StringIndexer(inputCols=strings, outputCols=indexed, handleInvalid="keep")] if strings else []
    return stages, indexed


def linear_pipeline(feature_set: str) -> Pipeline:
    """One-hot categories + numbers -> `LinearRegression`."""
    categorical, numeric = columns(feature_set)
    stages, indexed = _stages("lin", categorical)
    encoded = [f"{c}_ohe" for c in indexed]
    stages.append(OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"))
    stages.append(VectorAssembler(inputCols=encoded + numeric, outputCol="lin_features", handleInvalid="keep"))
    stages.append(LinearRegression(featuresCol="lin_features", labelCol=TARGET, predictionCol="p_linear", **LINEAR_FIT))
    return Pipeline(stages=stages)


def gbt_pipeline(feature_set: str, seed: int = 0) -> tuple[Pipeline, list[str]]:
    """Indexed strings + numbers -> `GBTRegressor`; also the assembled input names, for importances."""
    categorical, numeric = columns(feature_set)
    strings = [c for c in categorical if c not in TREE_SKIPS and c not in (s.PU_ZONE, s.DO_ZONE)]
    numbers = [c for c in categorical if c in (s.PU_ZONE, s.DO_ZONE)] + numeric
    stages, indexed = _stages("gbt", strings)
    inputs = indexed + numbers
    stages.append(VectorAssembler(inputCols=inputs, outputCol="gbt_features", handleInvalid="keep"))
    gbt = GBTRegressor(featuresCol="gbt_features", labelCol=TARGET, predictionCol="p_gbt", seed=seed, **GBT_PARAMS)
    stages.append(gbt)
    return Pipeline(stages=stages), strings + numbers


def course_pipeline() -> Pipeline:
    """The course baseline in MLlib: one-hot `PU_DO` + `trip_distance` -> `LinearRegression`."""
    return Pipeline(
        stages=[
            StringIndexer(inputCol="zone_pair", outputCol="course_pair_idx", handleInvalid="keep"),
            OneHotEncoder(inputCol="course_pair_idx", outputCol="course_pair_ohe", handleInvalid="keep"),
            VectorAssembler(inputCols=["course_pair_ohe", s.DISTANCE], outputCol="course_features"),
            LinearRegression(featuresCol="course_features", labelCol=TARGET, predictionCol=PREDICTION, **LINEAR_FIT),
        ]
    )


def fit_course(train: DataFrame) -> MllibPredictor:
    """Fit the course baseline on Spark."""
    return MllibPredictor(course_pipeline().fit(train))


def _search(
    grids: list[tuple[str, Pipeline, list[Any]]], train: DataFrame, validate: DataFrame, parallelism: int
) -> list[Candidate]:
    # Written here rather than TrainValidationSplit, which holds out a random share of rows: a time-honest
    # search must hold out the next month. The concurrency is the same: `parallelism` fits at once.
    jobs = [(name, pipeline, params) for name, pipeline, grid in grids for params in grid]

    def run(job: tuple[str, Pipeline, Any]) -> Candidate:
        name, pipeline, params = job
        model = pipeline.fit(train, params)
        column = model.stages[-1].getPredictionCol()
        rmse = RegressionEvaluator(labelCol=TARGET, predictionCol=column, metricName="rmse").evaluate(
            model.transform(validate)
        )
        readable = {p.name: v for p, v in params.items()}
        return Candidate(name, readable, model, rmse)

    with ThreadPool(max(1, parallelism)) as pool:
        return pool.map(run, jobs)


def _averaged(linear: PipelineModel, gbt: PipelineModel, weight: float) -> PipelineModel:
    mix = SQLTransformer(
        statement=f"SELECT *, {1 - weight} * p_linear + {weight} * p_gbt AS {PREDICTION} FROM __THIS__"
    )
    return PipelineModel(stages=[linear, gbt, mix])


def _renamed(model: PipelineModel) -> PipelineModel:
    rename = SQLTransformer(statement=f"SELECT *, {model.stages[-1].getPredictionCol()} AS {PREDICTION} FROM __THIS__")
    return PipelineModel(stages=[model, rename])


def _ensemble_rmse(best_linear: Candidate, best_gbt: Candidate, validate: DataFrame) -> dict[float, float]:
    both = best_gbt.model.transform(best_linear.model.transform(validate))
    y = F.col(TARGET)
    errors = [
        F.sqrt(F.avg(F.pow((1 - w) * F.col("p_linear") + w * F.col("p_gbt") - y, 2))).alias(str(w))
        for w in ENSEMBLE_WEIGHTS
    ]
    row = both.agg(*errors).first()
    assert row is not None
    return {w: float(row[str(w)]) for w in ENSEMBLE_WEIGHTS}


def fit(
    train: DataFrame,
    validate: DataFrame,
    feature_set: str,
    parallelism: int = 2,
    seed: int = 0,
    quick: bool = False,
) -> SparkTraining:
    """Search both model families concurrently on Spark, then keep the average only if it wins."""
    train, validate = train.persist(), validate.persist()
    try:
        linear = linear_pipeline(feature_set)
        gbt, gbt_inputs = gbt_pipeline(feature_set, seed)
        lr, tree = linear.getStages()[-1], gbt.getStages()[-1]
        trees = ParamGridBuilder().addGrid(tree.maxDepth, [4] if quick else [6, 8])
        trees = trees.addGrid(tree.maxIter, [10 if quick else GBT_PARAMS["maxIter"]])
        grids = [
            ("linear", linear, ParamGridBuilder().addGrid(lr.regParam, [1e-4, 1e-2]).build()),
            ("gbt", gbt, trees.build()),
        ]
        candidates = _search(grids, train, validate, parallelism)
        best = min(candidates, key=lambda c: c.rmse)
        best_linear = min((c for c in candidates if c.name == "linear"), key=lambda c: c.rmse)
        best_gbt = min((c for c in candidates if c.name == "gbt"), key=lambda c: c.rmse)
        importances = dict(zip(gbt_inputs, best_gbt.model.stages[-1].featureImportances.toArray(), strict=True))
        weight, mixed = min(_ensemble_rmse(best_linear, best_gbt, validate).items(), key=lambda kv: kv[1])
        if mixed < best.rmse:
            params = {"linear": best_linear.params, "gbt": best_gbt.params, "gbt_weight": weight}
            ensemble = Candidate("ensemble", params, _averaged(best_linear.model, best_gbt.model, weight), mixed)
            candidates.append(ensemble)
            best = ensemble
        chosen = best.model if best.name == "ensemble" else _renamed(best.model)
        return SparkTraining(MllibPredictor(chosen), best.name, best.params, candidates, importances)
    finally:
        train.unpersist()
        validate.unpersist()
