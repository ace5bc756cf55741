"""Spark's search: month weights, the time budget, and the tuned search's wider grid and refit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient

from taxi_duration.core import schema as s
from taxi_duration.core.config import Search
from taxi_duration.core.months import Month, parse_months
from taxi_duration.features.definitions import TARGET
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ingest.synth import generate
from taxi_duration.train.local import month_weights
from taxi_duration.train.splits import TimeSplit
from tests.conftest import store_settings

pytestmark = pytest.mark.spark

# A grid as small as a test can afford, every family in it: the tuned search's mechanics, not its models.
TINY = {"linear": {"regParam": [1e-4]}, "gbt": {"maxIter": [5], "maxDepth": [3]}, "xgboost": {"n_estimators": [10]}}


def test_spark_weighs_a_row_as_the_embedded_path_does_and_the_fit_follows(prepared_spark: Any, spark: Any) -> None:
    from pyspark.sql import functions as F

    from taxi_duration.train import spark as train_spark
    from taxi_duration.train import spark_search

    newest = Month(2023, 1)
    pickups = pd.to_datetime(["2022-11-30 23:00", "2022-12-01 00:00", "2023-01-15 12:00"])
    frame = spark.createDataFrame(pd.DataFrame({s.PICKUP: pickups}))
    weighed = train_spark._with_weights(frame, newest, {0.5: "w"}).orderBy(s.PICKUP).toPandas()
    assert weighed["w"].tolist() == month_weights(newest, 0.5)(pd.DataFrame({s.PICKUP: pickups})).tolist()
    # The same trips twice, a month ago taking twice as long: weighed 0.25, the old month counts less.
    now = prepared_spark.parts["train"].to_native()
    month_ago = F.col(s.PICKUP) - F.expr("INTERVAL 1 MONTH")
    before = now.withColumn(TARGET, F.col(TARGET) * 2).withColumn(s.PICKUP, month_ago)
    both = train_spark._with_weights(now.unionByName(before), newest, {0.25: "w"})
    linear = train_spark.linear_pipeline("with_distance")
    weight = spark_search.last_stage(linear).getParam("weightCol")
    mean = now.agg({TARGET: "avg"}).first()[0]

    def mean_prediction(params: dict[Any, Any]) -> float:
        scored = linear.fit(both, params).transform(now)
        return float(scored.agg({"p_linear": "avg"}).first()[0] / mean)

    assert mean_prediction({}) == pytest.approx(1.5, rel=0.02)  # both months alike: halfway
    assert mean_prediction({weight: "w"}) == pytest.approx(1.2, rel=0.02)  # (0.25 * 2 + 1) / 1.25


def test_the_course_baseline_in_one_pass_is_mllibs_exact_ridge_fit(prepared_spark: Any, spark: Any) -> None:
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, SQLTransformer, StringIndexer, VectorAssembler
    from pyspark.ml.regression import LinearRegression

    from taxi_duration.features.definitions import TRIP_MILES_SQL
    from taxi_duration.train import spark_course

    train = prepared_spark.course_parts["train"].to_native()
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup())
    fitted = spark_course.fit_course(train)
    assert len(set(tracker.getJobIdsForGroup()) - before) <= 2  # one group-by (its shuffle a job of its own)
    # MLlib's own pipeline, its ridge solved by the normal equations (exact: a few thousand pairs allow it). They
    # scale the ridge by the label's spread over n rows, L-BFGS (the objective `fit_course` solves) over n - 1:
    # the coefficients agree to about 1/n.
    reference = Pipeline(
        stages=[
            StringIndexer(inputCol="zone_pair", outputCol="course_pair_idx", handleInvalid="keep"),
            OneHotEncoder(inputCol="course_pair_idx", outputCol="course_pair_ohe", handleInvalid="keep"),
            SQLTransformer(statement=f"SELECT *, {TRIP_MILES_SQL} AS course_miles FROM __THIS__"),
            VectorAssembler(inputCols=["course_pair_ohe", "course_miles"], outputCol="course_features"),
            LinearRegression(
                featuresCol="course_features",
                labelCol=TARGET,
                standardization=False,
                regParam=spark_course.COURSE_REG_PARAM,
                solver="normal",
            ),
        ]
    ).fit(train)
    assert fitted.model.stages[0].labels == reference.stages[0].labels
    ours, theirs = fitted.model.stages[-1], reference.stages[-1]
    assert ours.intercept == pytest.approx(theirs.intercept, rel=1e-5)
    assert ours.coefficients.toArray() == pytest.approx(theirs.coefficients.toArray(), rel=1e-3, abs=1e-5)
    validate = prepared_spark.course_parts["validate"].to_native()
    predicted = fitted.transform(validate).select("prediction").toPandas()["prediction"]
    expected = reference.transform(validate).select("prediction").toPandas()["prediction"].clip(lower=0)
    assert predicted.to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-4)


def test_the_tuned_trials_run_as_tasks_as_many_at_once_as_there_are_task_slots(
    prepared_spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taxi_duration.train import spark as train_spark
    from taxi_duration.train import spark_trials

    monkeypatch.setattr(spark_trials, "MAX_ROUNDS", 60)  # the mechanics, not the model
    train, validate = (prepared_spark.parts[role].to_native() for role in ("train", "validate"))
    xgboost = train_spark.xgboost_pipeline("with_distance", 1)
    rounds: list[tuple[int, int]] = []
    studied = spark_trials.study(xgboost, train, validate, 4, 600.0, on_trial=lambda *done: rounds.append(done))
    assert studied.slots == 2  # local[2]
    assert rounds == [(2, 4), (4, 4)]  # two rounds (two Spark jobs) of two trials
    trials = studied.trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    # A round's two tasks ran in two Python workers, as two tasks running at once must. Their start times are not
    # compared: on a loaded machine a task of a few tenths of a second may end before its sibling has started.
    for a, b in (trials[:2], trials[2:]):
        assert a.where != b.where
    assert studied.best.validate_rmse == min(t.validate_rmse for t in trials) < 8.0  # the target's spread is ~10
    assert all(1 <= t.rounds <= 60 for t in trials)
    point = {**studied.best.params, "n_estimators": studied.best.rounds}
    assert studied.grid() == {name: [value] for name, value in point.items()}
    assert (studied.summary["trials"], studied.summary["task_slots"]) == (4, 2)


def test_no_candidate_starts_after_the_budget_and_each_is_counted(prepared_spark: Any) -> None:
    from taxi_duration.train import spark as train_spark
    from taxi_duration.train import spark_search

    train, validate = prepared_spark.parts["train"].to_native(), prepared_spark.parts["validate"].to_native()
    families = [("linear", train_spark.linear_pipeline("with_distance"))]
    jobs = spark_search.jobs(families, {"linear": {"regParam": [1e-4, 1e-3, 1e-2]}}, {1.0: None})
    counted: list[tuple[int, int]] = []
    begun = time.time()
    # One at a time: the first starts at once and takes longer than the budget, so the others never start.
    found, skipped = spark_search.run(jobs, train, validate, 1, lambda *n: counted.append(n), budget_s=0.5)
    assert time.time() - begun > 0.5
    assert [c.params for c in found] == [{"regParam": 1e-4}]
    assert [j.readable for j in skipped] == [{"regParam": 1e-3}, {"regParam": 1e-2}]
    assert counted == [(1, 3), (2, 3), (3, 3)]


def test_the_families_take_turns_and_each_point_is_tried_at_every_decay(spark: Any) -> None:
    from taxi_duration.train import spark as train_spark
    from taxi_duration.train import spark_search

    families = [("linear", train_spark.linear_pipeline("pretrip")), ("gbt", train_spark.gbt_pipeline("pretrip"))]
    grids = {"linear": {"regParam": [1e-4, 1e-2]}, "gbt": {"maxDepth": [5]}}
    jobs = spark_search.jobs(families, grids, {1.0: None, 0.9: "month_weight_1"})
    assert [(j.name, j.readable) for j in jobs] == [
        ("linear", {"regParam": 1e-4, "month_decay": 1.0}),
        ("gbt", {"maxDepth": 5, "month_decay": 1.0}),
        ("linear", {"regParam": 1e-4, "month_decay": 0.9}),
        ("gbt", {"maxDepth": 5, "month_decay": 0.9}),
        ("linear", {"regParam": 1e-2, "month_decay": 1.0}),
        ("linear", {"regParam": 1e-2, "month_decay": 0.9}),
    ]
    weight_of = {j.readable["month_decay"]: {p.name: v for p, v in j.params.items()}.get("weightCol") for j in jobs}
    assert weight_of == {1.0: None, 0.9: "month_weight_1"}
    assert [j.readable for j in spark_search.jobs(families[:1], grids, {1.0: None})] == [
        {"regParam": 1e-4},  # a decay nobody chose is not a parameter
        {"regParam": 1e-2},
    ]


def test_the_tuned_spark_search_tries_each_decay_on_a_window_and_registers_the_refit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spark: Any
) -> None:
    from taxi_duration.train import spark as train_spark
    from taxi_duration.train.job import train

    monkeypatch.setitem(train_spark.GRIDS, Search.TUNE, TINY)
    generate(8_000, parse_months("2022-12..2023-03"), tmp_path / "raw", seed=7)
    window = TimeSplit.last_two_held_out(parse_months("2022-12..2023-03"))
    settings = store_settings(
        tmp_path, engine="spark", spark_master="local[2]", spark_driver_memory="1g", search="tune", tune_trials="2"
    )
    outcome = train(settings, check_all(discover([tmp_path / "raw"])), window, "with_distance")

    client = MlflowClient(settings.mlflow_tracking_uri)
    run = client.get_run(outcome.run_id)
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{outcome.run_id}'")
    named = {prefix: [c for c in children if c.info.run_name.startswith(prefix)] for prefix in ("candidate", "trial")}
    assert len(named["trial"]) == 2  # XGBoost's trials on the executors, each with the executor that ran it
    assert all(c.data.tags["executor"] for c in named["trial"])
    tried = sorted((c.data.params["family"], c.data.params["month_decay"]) for c in named["candidate"])
    assert tried == sorted((f, d) for f in ("linear", "gbt", "xgboost") for d in ("1.0", "0.9"))
    chosen = {k: v for k, v in outcome.params.items() if k.endswith("month_decay")}  # an ensemble has two
    assert chosen, outcome.params
    assert set(chosen.values()) <= {1.0, 0.9}
    # Refitted on training and validation months: the validation score is the judged model's, and the test
    # month's score before the refit is kept for the record.
    assert outcome.trained_rows == outcome.rows["train"] + outcome.rows["validate"]
    assert "test_prerefit_model_rmse" in run.data.metrics
    assert run.data.metrics["test_model_rmse"] != run.data.metrics["test_prerefit_model_rmse"]
