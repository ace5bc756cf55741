"""The big-data pipeline: Spark ML pipelines trained on Spark DataFrames where they lie, never collected.

Candidates from each model family (MLlib linear regression, MLlib gradient-boosted trees, and XGBoost's own
Spark estimator when `xgboost` is installed) are fitted concurrently (`parallelism` Spark jobs at once, as
`TrainValidationSplit` does) and judged on the validation month. The best two family winners are then
averaged with a weight chosen on the same month, and the average is kept only when it beats the best
single model there.

`--search tune` widens that search (`GRIDS`), and XGBoost's parameters come from an Optuna study whose trials
run as tasks on the executors, on a sample (`spark_trials`): its best trial is the XGBoost candidate, fitted
on every row. On a window of several months it also fits each candidate with older months weighing less
(`TUNE_DECAYS`), stops starting candidates (and trials) after a time budget, and refits the choice on the
training and validation months.

This module holds the families' pipelines, the fitted model (`MllibPredictor`), the month weights and the
refit; the search's scheduler is `spark_search`, the average of two winners `spark_ensemble`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor, LinearRegression
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taxi_duration.core import schema as s
from taxi_duration.core.config import FeatureSet, Search
from taxi_duration.core.months import Month
from taxi_duration.engines.spark import get_spark, task_slots
from taxi_duration.features.definitions import TARGET
from taxi_duration.serve.native import NativeModel
from taxi_duration.train import spark_search, spark_trials
from taxi_duration.train.export import PREDICTION, from_mllib
from taxi_duration.train.local import columns, month_age, month_weight
from taxi_duration.train.spark_ensemble import averaged, best_average, renamed
from taxi_duration.train.spark_search import Candidate, fit_retrying_barriers, last_stage

# Strings with few values are indexed; zone ids stay numbers for trees (265 values would need 265 bins),
# and the zone pair (thousands of values) reaches trees through the store's pair statistics.
TREE_SKIPS = ("zone_pair",)
# The linear family leaves the zone pair to the store's statistics too: one-hot pairs (thousands of columns)
# are past the 4096 features MLlib solves exactly, and L-BFGS made up to 100 passes over the rows (86 s of
# a 1M-trip search). Without them the design is some 600 columns, which the normal equations solve in one
# pass; a tiny ridge keeps them well posed where a category is rare.
LINEAR_SKIPS = ("zone_pair",)
LINEAR_FIT: dict[str, Any] = {"standardization": False, "regParam": 1e-4, "solver": "normal"}
# Chosen on the validation month 2023-02 (never the test month). GBT past ~200 iterations needs a checkpoint
# directory, or its lineage overflows the JVM stack when tasks are serialized. GBT searches only under
# `tune`: each of its iterations is several passes over the rows (a 10-iteration fit, 58 Spark jobs and 49 s
# of a 1M-trip search), where XGBoost fits every tree in one barrier stage.
GBT_PARAMS: dict[str, Any] = {"maxIter": 150, "maxDepth": 5, "stepSize": 0.1, "subsamplingRate": 0.8, "maxBins": 64}
XGB_PARAMS: dict[str, Any] = {
    "max_depth": 8,
    "n_estimators": 600,
    "learning_rate": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 20,
    "tree_method": "hist",
    "verbosity": 0,
    "verbose": False,  # no per-round training RMSE on the console
}
# What each search tries, family by family, on top of the fixed parameters above: each parameter's values.
# `tune` lists `full`'s value first: the families take turns and each family's grid runs in order, so the
# candidates a time budget lets start are `full`'s before the others.
GRIDS: dict[Search, dict[str, dict[str, list[Any]]]] = {
    Search.QUICK: {"linear": {"regParam": [1e-4]}, "xgboost": {"n_estimators": [60], "learning_rate": [0.15]}},
    Search.FULL: {
        "linear": {"regParam": [1e-4, 1e-2]},
        "xgboost": {"n_estimators": [XGB_PARAMS["n_estimators"]]},
    },
    Search.TUNE: {
        "linear": {"regParam": [1e-4, 1e-2, 1e-3]},
        "gbt": {"maxIter": [GBT_PARAMS["maxIter"]], "maxDepth": [GBT_PARAMS["maxDepth"], 7]},
        "xgboost": {},  # its one point is the best of the trials on the executors (`spark_trials`)
    },
}
# `tune` on a window of several months fits every candidate at each of these `month_decay`s (a row n months
# older than the newest training month weighs month_decay**n).
TUNE_DECAYS = (1.0, 0.9)
# The parameter that counts a tree family's trees, scaled by the refit (more rows bear more trees).
TREE_COUNTS = {"gbt": "maxIter", "xgboost": "n_estimators"}
XGB_LOGGER = "XGBoost-PySpark"  # xgboost.spark's own logger (`_LOG_TAG`)


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
        out: pd.DataFrame = self.transform(frame).select("_row", PREDICTION).toPandas()
        return out.sort_values("_row")[PREDICTION].to_numpy(dtype=float)

    def save(self, path: Path) -> None:
        """Write the PipelineModel with MLlib's own writer."""
        self.model.write().save(str(path))

    def native(self) -> NativeModel:
        """The PipelineModel exported to numpy, read while Spark is up."""
        return from_mllib(self.model)

    @classmethod
    def load(cls, path: Path) -> MllibPredictor:
        """Read a folder written by `save` (starts a local Spark session if none is active)."""
        get_spark()
        return cls(PipelineModel.load(str(path)))


@dataclass
class SparkTraining:
    """The chosen model, every candidate's score, and the tree model's feature importances. After a refit,
    `judged` is the model as chosen on the validation month (`chosen` has seen that month); `skipped` names
    the candidates the time budget left unstarted."""

    chosen: MllibPredictor
    name: str
    params: dict[str, Any]
    candidates: list[Candidate]
    importances: dict[str, float]
    judged: MllibPredictor | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)
    study: dict[str, Any] = field(default_factory=dict)  # the trials on the executors, under `tune`


def _stages(prefix: str, strings: list[str]) -> tuple[list[Any], list[str]]:
    indexed = [f"{prefix}_{c}_idx" for c in strings]
    stages: list[Any] = [StringIndexer(inputCols=strings, outputCols=indexed, handleInvalid="keep")] if strings else []
    return stages, indexed


def linear_pipeline(feature_set: FeatureSet) -> Pipeline:
    """One-hot categories (but `LINEAR_SKIPS`) + numbers -> `LinearRegression`, solved in one pass."""
    categorical, numeric = columns(feature_set)
    stages, indexed = _stages("lin", [c for c in categorical if c not in LINEAR_SKIPS])
    encoded = [f"{c}_ohe" for c in indexed]
    stages.append(OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"))
    stages.append(VectorAssembler(inputCols=encoded + numeric, outputCol="lin_features", handleInvalid="keep"))
    stages.append(LinearRegression(featuresCol="lin_features", labelCol=TARGET, predictionCol="p_linear", **LINEAR_FIT))
    return Pipeline(stages=stages)


def _tree_inputs(feature_set: FeatureSet, prefix: str) -> tuple[list[Any], list[str], list[str]]:
    """Stages that assemble `{prefix}_features` for tree models, and the names of the assembled inputs."""
    categorical, numeric = columns(feature_set)
    strings = [c for c in categorical if c not in TREE_SKIPS and c not in (s.PU_ZONE, s.DO_ZONE)]
    numbers = [c for c in categorical if c in (s.PU_ZONE, s.DO_ZONE)] + numeric
    stages, indexed = _stages(prefix, strings)
    stages.append(VectorAssembler(inputCols=indexed + numbers, outputCol=f"{prefix}_features", handleInvalid="keep"))
    return stages, indexed + numbers, strings + numbers


def gbt_pipeline(feature_set: FeatureSet, seed: int = 0) -> Pipeline:
    """Indexed strings + numbers -> MLlib's `GBTRegressor`."""
    stages, _, _ = _tree_inputs(feature_set, "gbt")
    gbt = GBTRegressor(featuresCol="gbt_features", labelCol=TARGET, predictionCol="p_gbt", seed=seed, **GBT_PARAMS)
    return Pipeline(stages=[*stages, gbt])


def xgboost_pipeline(feature_set: FeatureSet, workers: int, seed: int = 0) -> Pipeline | None:
    """The same inputs -> XGBoost's own Spark estimator, or None when xgboost is not installed."""
    try:
        from xgboost.spark import SparkXGBRegressor
    except ImportError:
        return None
    # XGBoost logs each fit's parameters at INFO on the driver's screen (and tells its tasks the level): nothing
    # a user acts on.
    for logger in (SparkXGBRegressor.__name__, XGB_LOGGER):
        logging.getLogger(logger).setLevel(logging.WARNING)
    stages, _, _ = _tree_inputs(feature_set, "xgb")
    xgb = SparkXGBRegressor(
        features_col="xgb_features",
        label_col=TARGET,
        prediction_col="p_xgb",
        num_workers=workers,
        random_state=seed,
        **XGB_PARAMS,
    )
    return Pipeline(stages=[*stages, xgb])


def _families(
    train: DataFrame, feature_set: FeatureSet, grids: dict[str, dict[str, list[Any]]], parallelism: int, seed: int
) -> list[tuple[str, Pipeline]]:
    """The pipeline of each model family the search's `grids` name, by name: XGBoost's only when installed."""
    families = []
    if "linear" in grids:
        families.append(("linear", linear_pipeline(feature_set)))
    if "gbt" in grids:
        families.append(("gbt", gbt_pipeline(feature_set, seed)))
    if "xgboost" in grids:
        points = math.prod(len(values) for values in grids["xgboost"].values())
        xgb = xgboost_pipeline(feature_set, _xgboost_workers(train, parallelism, points), seed)
        if xgb is not None:
            families.append(("xgboost", xgb))
    return families


def _xgboost_workers(train: DataFrame, parallelism: int, points: int) -> int:
    """Each XGBoost fit's workers: the cluster's task slots, shared among the XGBoost fits that run at once. A
    barrier stage asks for all its tasks at once, so more workers than slots would wait until Spark gives up."""
    return max(1, task_slots(train.sparkSession.sparkContext) // max(1, min(parallelism, points)))


def _weight_columns(
    train: DataFrame, search: Search, months: tuple[Month, Month] | None, month_decay: float
) -> dict[float, str | None]:
    """Each `month_decay` the search fits with, and the name of its weight column (None for equal weights)."""
    decays = TUNE_DECAYS if search is Search.TUNE else (month_decay,)
    if months is None or decays == (1.0,) or not _older_rows(train, months[0]):
        decays = (1.0,)
    return {decay: None if decay == 1.0 else f"month_weight_{i}" for i, decay in enumerate(decays)}


def _importances(winners: list[Candidate], feature_set: FeatureSet) -> dict[str, float]:
    """The feature importances of the best tree family's winner (none when no tree family ran)."""
    trees = [w for w in winners if w.name != "linear"]
    if not trees:
        return {}
    _, _, names = _tree_inputs(feature_set, "any")
    tree = min(trees, key=lambda c: c.rmse)
    last = last_stage(tree.model)
    if tree.name == "gbt":
        return dict(zip(names, last.featureImportances.toArray().tolist(), strict=True))
    gains = last.get_booster().get_score(importance_type="gain")
    return {name: float(gains.get(f"f{i}", 0.0)) for i, name in enumerate(names)}


def fit(
    train: DataFrame,
    validate: DataFrame,
    feature_set: FeatureSet,
    parallelism: int = 2,
    seed: int = 0,
    search: Search = Search.FULL,
    on_candidate: Callable[[int, int], None] = lambda done, total: None,
    months: tuple[Month, Month] | None = None,
    month_decay: float = 1.0,
    budget_s: float | None = None,
    tree_scale: float = 1.0,
    trials: int = 0,
    on_trial: Callable[[int, int], None] = lambda done, total: None,
) -> SparkTraining:
    """Search every model family concurrently on Spark (`GRIDS[search]`), then keep the best average only if it
    wins; `on_candidate(done, total)` is called as each candidate of the search is fitted and scored (or
    skipped: the budget).

    `months` (the newest training month and the validation month, None for a split by file) lets older
    months weigh less: `month_decay` per month of age, or under `tune` each of `TUNE_DECAYS`, when the
    training rows hold older months. `tune` first runs at most `trials` trials of XGBoost's parameters on the
    executors (`spark_trials.study`, `on_trial(done, trials)` as each round of them ends), stops starting
    candidates after `budget_s` seconds and refits the choice on the training and validation rows, its tree
    counts times `tree_scale`.
    """
    columns = _weight_columns(train, search, months, month_decay)
    weighed = _with_weights(train, months[0], columns) if months is not None else train
    weighed, validate = weighed.persist(), validate.persist()
    try:
        grids, studied = GRIDS[search], None
        xgboost = xgboost_pipeline(feature_set, 1, seed) if search is Search.TUNE and "xgboost" in grids else None
        if xgboost is not None:  # its feature stages assemble the trials' sample
            studied = spark_trials.study(xgboost, train, validate, trials, budget_s or math.inf, seed, on_trial)
            grids = {**grids, "xgboost": studied.grid()}
        families = _families(train, feature_set, grids, parallelism, seed)
        jobs = spark_search.jobs(families, grids, columns)
        budget = budget_s if search is Search.TUNE else None
        candidates, skipped = spark_search.run(jobs, weighed, validate, parallelism, on_candidate, budget)
        ran = [name for name, _ in families if any(c.name == name for c in candidates)]
        winners = [min((c for c in candidates if c.name == name), key=lambda c: c.rmse) for name in ran]
        best = min(winners, key=lambda c: c.rmse)
        importances = _importances(winners, feature_set)
        average = best_average(winners, validate)
        if average is not None and average.rmse < best.rmse:
            candidates.append(average)
            best = average
        chosen = MllibPredictor(best.model if best.name == "ensemble" else renamed(best.model))
        judged = None
        if search is Search.TUNE:
            both = train.unionByName(validate)
            judged, chosen = chosen, MllibPredictor(_refit(best, both, months[1] if months else None, tree_scale))
        missed = [{"name": job.name, "params": job.readable} for job in skipped]
        study = studied.summary if studied is not None else {}
        return SparkTraining(chosen, best.name, best.params, candidates, importances, judged, missed, study)
    finally:
        weighed.unpersist()
        validate.unpersist()


def _older_rows(train: DataFrame, newest: Month) -> bool:
    """Whether any training row was picked up before `newest` (one pass over the rows)."""
    oldest = nw.from_native(train).select(month_age(newest).max()).collect().item()
    return oldest is not None and oldest > 0


def _with_weights(frame: DataFrame, newest: Month, columns: dict[float, str | None]) -> DataFrame:
    """`frame` with a `month_weight` column, counted back from `newest`, for each decay that names one."""
    named = {column: month_weight(newest, decay) for decay, column in columns.items() if column is not None}
    return nw.from_native(frame).with_columns(**named).to_native() if named else frame


def _refit(best: Candidate, both: DataFrame, newest: Month | None, tree_scale: float) -> PipelineModel:
    """`best` fitted again on `both` (training and validation rows), its output named `prediction`: an ensemble
    is its two winners refitted (`_refitted`) and averaged with the same weight."""
    if best.mix is None:
        return renamed(_refitted(best, both, newest, tree_scale))
    a, b, weight = best.mix
    return averaged(_refitted(a, both, newest, tree_scale), _refitted(b, both, newest, tree_scale), weight)


def _refitted(searched: Candidate, both: DataFrame, newest: Month | None, tree_scale: float) -> PipelineModel:
    """A searched candidate's pipeline fitted on `both` with its parameters, its trees times `tree_scale`, older
    months weighing its decay per month counted back from `newest` (the validation month)."""
    job = searched.job
    assert job is not None, "a searched candidate keeps its job"
    estimator, params = last_stage(job.pipeline), dict(job.params)
    if job.name in TREE_COUNTS:
        count = estimator.getParam(TREE_COUNTS[job.name])
        params[count] = max(1, round(params.get(count, estimator.getOrDefault(count)) * tree_scale))
    if newest is not None and job.decay != 1.0:
        both = _with_weights(both, newest, {job.decay: "refit_weight"})
        params[estimator.getParam("weightCol")] = "refit_weight"
    return fit_retrying_barriers(lambda: job.pipeline.fit(both, params))
