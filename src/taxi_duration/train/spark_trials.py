"""`--search tune` on Spark: XGBoost's trials as tasks on the executors, the winner then fitted on every row.

A distributed fit per trial spends each trial's fixed cost (a barrier stage, Python workers on every
executor) on the whole cluster, one or two trials at a time. Here, as Hyperopt's `SparkTrials` and
joblib-spark do, each trial is one task: a single-node XGBoost on a sample of the training and validation
rows, which every executor receives once (a broadcast), stopped early on the validation sample. An Optuna
study (TPE, seeded) draws the trials in rounds of as many as the cluster has task slots, each round one Spark
job, so the Spark UI's timeline shows that many trials at once. The best trial's parameters and tree count
then become the XGBoost candidate of the distributed search (`train_spark.fit`), fitted on all rows by
XGBoost's Spark estimator, beside the other families.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taxi_duration.engines.spark import task_slots
from taxi_duration.features.definitions import TARGET
from taxi_duration.train import tune

# Rows a trial trains and stops on: enough for the parameters' ranking, small enough to send to every executor
# (some 60 MB of float64 at 40 inputs) and to fit in a task's one core.
TRIAL_ROWS = 200_000
VALIDATE_ROWS = 50_000
MAX_ROUNDS = 2_000
EARLY_STOPPING = 50
# On top of every trial's parameters: one core a task (a task slot is one core), squared error, RMSE.
FIXED = {"objective": "reg:squarederror", "eval_metric": "rmse", "tree_method": "hist", "nthread": 1, "verbosity": 0}


def suggest(trial: Any) -> dict[str, Any]:
    """One trial's XGBoost parameters (the names `SparkXGBRegressor` takes), drawn by the study."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_depth": trial.suggest_int("max_depth", 4, 10),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 100.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
    }


@dataclass
class Studied:
    """The study on the executors: every trial in order, the best one, the task slots (the trials of a round,
    run at once), and the study's summary for the training run (`tune.summarize`)."""

    best: tune.Trial
    trials: list[tune.Trial]
    slots: int
    summary: dict[str, Any]

    def grid(self) -> dict[str, list[Any]]:
        """The best trial as a one-point grid of the XGBoost family: its parameters and its tree count."""
        return {name: [value] for name, value in {**self.best.params, "n_estimators": self.best.rounds}.items()}


def study(
    xgboost: Pipeline,
    train: DataFrame,
    validate: DataFrame,
    trials: int,
    budget_s: float,
    seed: int = 0,
    on_trial: Callable[[int, int], None] = lambda done, total: None,
) -> Studied:
    """Run at most `trials` trials of XGBoost's parameters as Spark tasks, none started after `budget_s`
    seconds, on samples of `train` and `validate` assembled by `xgboost`'s feature stages."""
    optuna = tune.optuna_module()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial would break the progress bar
    began = time.time()
    features = Pipeline(stages=xgboost.getStages()[:-1]).fit(train)
    inputs = xgboost.getStages()[-1].getOrDefault("featuresCol")
    sampled = (
        *_sample(features, inputs, train, TRIAL_ROWS, seed),
        *_sample(features, inputs, validate, VALIDATE_ROWS, seed),
    )
    context = train.sparkSession.sparkContext
    slots = task_slots(context)
    data = context.broadcast(sampled)
    chosen = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    done: list[tune.Trial] = []
    try:
        while len(done) < trials and (not done or time.time() - done[0].started_at < budget_s):
            asked = [chosen.ask() for _ in range(min(slots, trials - len(done)))]
            drawn = [suggest(trial) for trial in asked]
            numbered = [(trial.number, params) for trial, params in zip(asked, drawn, strict=True)]
            context.setJobDescription(f"trials {numbered[0][0]}-{numbered[-1][0]} of the tuned search")
            rounds = (
                context.parallelize(numbered, len(numbered))
                .map(functools.partial(_trial, data, seed, (MAX_ROUNDS, EARLY_STOPPING)))
                .collect()
            )
            for trial, ran in zip(asked, rounds, strict=True):
                chosen.tell(trial, ran.validate_rmse)
                done.append(ran)
            on_trial(len(done), trials)
    finally:
        context.setJobDescription(None)  # type: ignore[arg-type]  # None clears it (PySpark types it str)
        data.destroy()
    best = min(done, key=lambda t: t.validate_rmse)
    summary = tune.summarize(best, done, seed, trials, budget_s, time.time() - began)
    return Studied(best, done, slots, {**summary, "task_slots": slots, "sample_rows": len(sampled[1])})


def _sample(
    features: PipelineModel, inputs: str, frame: DataFrame, rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """At most `rows` of `frame`'s rows, drawn at random, as XGBoost's inputs (assembled) and the target."""
    total = frame.count()
    if total > rows:
        frame = frame.sample(fraction=min(1.0, 1.1 * rows / total), seed=seed).limit(rows)
    assembled = features.transform(frame).select(vector_to_array(F.col(inputs)).alias("x"), F.col(TARGET).alias("y"))
    table = assembled.toArrow()
    x = np.asarray(table.column("x").combine_chunks().flatten()).reshape(table.num_rows, -1)
    return x.astype(np.float32), table.column("y").to_numpy().astype(np.float32)


def _trial(data: Any, seed: int, rounds: tuple[int, int], numbered: tuple[int, dict[str, Any]]) -> tune.Trial:
    """One trial, in a task on an executor: XGBoost on the broadcast sample, at most `rounds[0]` rounds, stopped
    after `rounds[1]` rounds without a better validation RMSE (the driver's settings, shipped with the task)."""
    import xgboost as xgb

    number, params = numbered
    most, patience = rounds
    started = time.time()
    x, y, x_validate, y_validate = data.value
    validate = xgb.DMatrix(x_validate, label=y_validate)
    booster = xgb.train(
        {**FIXED, **params, "seed": seed},
        xgb.DMatrix(x, label=y),
        num_boost_round=most,
        evals=[(validate, "validate")],
        early_stopping_rounds=patience,
        verbose_eval=False,
    )
    where = f"{socket.gethostname()}:{os.getpid()}"
    best = booster.best_iteration + 1
    return tune.Trial(number, params, float(booster.best_score), best, False, started, time.time(), where=where)
