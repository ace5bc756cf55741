"""The Spark search's scheduler: which candidates to fit, fitting them concurrently, and when each one ran.

Each candidate is one family's pipeline at one point of its grid and one `month_decay` (`Job`). `run` fits
`parallelism` of them at once, each under its own Spark job group (shown in the Spark UI), and keeps its
wall-clock span (`Span`), so the training run can show which candidates ran at the same time (`timeline`,
`peak_concurrency`). A fit whose barrier stage lost an executor is started again (`fit_retrying_barriers`).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from typing import Any, TypeVar

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import RegressionEvaluator
from pyspark.ml.tuning import ParamGridBuilder
from pyspark.sql import DataFrame

from taxi_duration.engines.frames import STEP_PROPERTY
from taxi_duration.features.definitions import TARGET

# A fit whose barrier stage lost an executor (XGBoost trains as one: all tasks at once, which Spark never
# retries) is started again this many times; the cluster replaces the executor meanwhile.
BARRIER_RETRIES = 2
LOST_BARRIER = "Could not recover from a failed barrier"
Fitted = TypeVar("Fitted")


@dataclass(frozen=True)
class Span:
    """When one candidate of the search ran (epoch seconds) and the Spark jobs it started."""

    started: float
    ended: float
    job_group: str
    job_ids: tuple[int, ...]


@dataclass(frozen=True)
class Job:
    """One candidate to fit: its family's pipeline, the parameters it is fitted with, and its `month_decay`."""

    name: str
    pipeline: Pipeline
    params: dict[Any, Any]
    decay: float
    readable: dict[str, Any]


@dataclass
class Candidate:
    """One fitted model, its validation RMSE, and when it ran (None for the ensemble, which is not searched);
    a searched one keeps its job (pipeline, parameters, `month_decay`), for the refit."""

    name: str
    params: dict[str, Any]
    model: PipelineModel
    rmse: float
    span: Span | None = None
    job: Job | None = None
    mix: tuple[Candidate, Candidate, float] | None = None  # the ensemble's two winners and the second's weight


def last_stage(model: PipelineModel | Pipeline) -> Any:
    """The final stage (the estimator or fitted model), typed loosely: each family has its own params."""
    return model.getStages()[-1] if isinstance(model, Pipeline) else model.stages[-1]


def jobs(
    families: list[tuple[str, Pipeline]], grids: dict[str, dict[str, list[Any]]], weights: dict[float, str | None]
) -> list[Job]:
    """Every candidate of the search: each family's grid, each point at every decay of `weights` (a decay's
    weight column, None for equal weights), the families taking turns so a time budget cuts every family's
    tail rather than a whole family."""
    named = len(weights) > 1 or 1.0 not in weights  # the decay is a choice of this search, or the user's
    turns = []
    for name, pipeline in families:
        estimator, builder = last_stage(pipeline), ParamGridBuilder()
        for param, values in grids[name].items():
            builder.addGrid(estimator.getParam(param), values)
        family = []
        for point in builder.build():
            for decay, column in weights.items():
                weighed = {} if column is None else {estimator.getParam("weightCol"): column}
                readable = {p.name: v for p, v in point.items()} | ({"month_decay": decay} if named else {})
                family.append(Job(name, pipeline, {**point, **weighed}, decay, readable))
        turns.append(family)
    return [job for turn in itertools.zip_longest(*turns) for job in turn if job is not None]


def run(
    planned: list[Job],
    train: DataFrame,
    validate: DataFrame,
    parallelism: int,
    on_candidate: Callable[[int, int], None],
    budget_s: float | None = None,
) -> tuple[list[Candidate], list[Job]]:
    """The fitted candidates in the jobs' order, and the jobs not started because `budget_s` seconds of the
    search had passed (a started fit finishes)."""
    # Written here rather than TrainValidationSplit, which holds out a random share of rows: a time-honest
    # search must hold out the next month. The concurrency is the same: `parallelism` fits at once.
    context = train.sparkSession.sparkContext
    search = uuid.uuid4().hex[:8]  # job groups are per process: two searches in one must not share them
    begun = time.time()
    step = context.getLocalProperty(STEP_PROPERTY)  # a thread's properties are its own: each fit carries the caller's

    def fit_one(numbered: tuple[int, Job]) -> Candidate | None:
        number, job = numbered
        if budget_s is not None and time.time() - begun > budget_s:
            return None
        group = f"search-{search}-{number}"
        # Local to this thread: every Spark job it starts from here on carries the group and description.
        context.setJobGroup(group, f"candidate {number}: {job.name} {job.readable}")
        if step is not None:
            context.setLocalProperty(STEP_PROPERTY, step)
        started = time.time()
        model = fit_retrying_barriers(lambda: job.pipeline.fit(train, job.params))
        column = last_stage(model).getPredictionCol()
        rmse = RegressionEvaluator(labelCol=TARGET, predictionCol=column, metricName="rmse").evaluate(
            model.transform(validate)
        )
        ended = time.time()
        job_ids = tuple(sorted(context.statusTracker().getJobIdsForGroup(group)))
        span = Span(started, ended, group, job_ids)
        return Candidate(job.name, job.readable, model, rmse, span, job)

    found: list[Candidate] = []
    skipped: list[Job] = []
    with ThreadPool(max(1, parallelism)) as pool:
        for done, (job, candidate) in enumerate(
            zip(planned, pool.imap(fit_one, enumerate(planned, 1)), strict=True), 1
        ):
            if candidate is None:
                skipped.append(job)
            else:
                found.append(candidate)
            on_candidate(done, len(planned))
    return found, skipped


def fit_retrying_barriers(fit: Callable[[], Fitted], retries: int = BARRIER_RETRIES) -> Fitted:
    """`fit()`, started again (up to `retries` times) when it failed only because its barrier stage lost an
    executor; any other failure is raised at once."""
    failures = 0
    while True:
        try:
            return fit()
        except Exception as exc:
            failures += 1
            if failures > retries or LOST_BARRIER not in str(exc):
                raise


def peak_concurrency(intervals: list[tuple[float, float]]) -> int:
    """The most (start, end) intervals running at one instant (one ending as another starts does not overlap it)."""
    # At equal times the end (-1) sorts before the start (+1).
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def timeline(candidates: list[Candidate]) -> list[dict[str, Any]]:
    """The searched candidates in order, each with its start, end and duration in seconds from the search's
    first start, and its Spark job group and jobs: the JSON behind the timeline chart."""
    spans = [(number, c, c.span) for number, c in enumerate(candidates, 1) if c.span is not None]
    if not spans:
        return []
    origin = min(span.started for _, _, span in spans)
    return [
        {
            "candidate": number,
            "name": c.name,
            "params": c.params,
            "validate_rmse": c.rmse,
            "start_s": round(span.started - origin, 3),
            "end_s": round(span.ended - origin, 3),
            "duration_s": round(span.ended - span.started, 3),
            "started_at": span.started,
            "ended_at": span.ended,
            "spark_job_group": span.job_group,
            "spark_job_ids": list(span.job_ids),
        }
        for number, c, span in spans
    ]
