"""The job's two trainers behind one result: model-ready parts in, a `Trained` model and its baseline out.

`fit_local` feeds the traditional pipeline (pandas batches -> scikit-learn + LightGBM, never one frame of a
part; Optuna under `--search tune`); `fit_spark` the big-data one (`train.spark`, trained where the data
lies). Each also fits the course baseline on the same training rows, so the job judges, logs and registers
either the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import narwhals as nw
import pandas as pd

from taxi_duration.core import schema as s
from taxi_duration.core.config import FeatureSet, Search, Settings
from taxi_duration.core.months import Month
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import TARGET
from taxi_duration.train import model as bundle_io
from taxi_duration.train.baselines import CourseBaseline
from taxi_duration.train.dataset import Prepared, sample_batches
from taxi_duration.train.runlog import drawn
from taxi_duration.train.splits import TimeSplit

# Progress within a step: (what is counted, how many are done, out of how many).
OnProgress = Callable[[str, int, int], None]


@dataclass
class Trained:
    """A trainer's result, as the job scores, logs and registers it."""

    kind: str
    model: Any
    course: Any
    chosen: str
    params: dict[str, Any]
    importances: dict[str, float]
    global_mean: float
    candidates: list[dict[str, Any]]
    rows: int  # the model's training rows
    search: list[dict[str, Any]] = field(default_factory=list)  # the Spark search's timeline, candidate by candidate
    study: dict[str, Any] = field(default_factory=dict)  # the tuned search's summary and trials (`tune.Tuned`)
    # The model as chosen on the validation month, when `model` is its refit on training and validation rows:
    # the validation scores, the champion rule and the interval read it, as `model` has seen that month.
    judged: Any = None


def check_tune(settings: Settings) -> None:
    """Fail before any work when the tuned search cannot run: without Optuna, which draws its trials on every
    engine (on Spark, XGBoost's: `spark_trials`)."""
    from taxi_duration.train import tune

    tune.optuna_module()


@dataclass
class _Rows:
    """The embedded trainer's training rows: its batches (read again on each call), the categories its encoder
    is fitted on, the target's mean and how many rows there are."""

    batches: Callable[[], Iterable[pd.DataFrame]]
    categories: pd.DataFrame
    mean: float
    count: int


@dataclass
class _Fitted:
    """The embedded trainer's LightGBM pipeline, the parameters it was given, and (tuned) what chose them."""

    pipeline: Any
    params: dict[str, Any]
    decay: float
    judged: Any = None
    study: dict[str, Any] = field(default_factory=dict)


def fit_local(
    prepared: Prepared, feature_set: FeatureSet, settings: Settings, on_progress: OnProgress, total: int, work: Path
) -> Trained:
    """The traditional pipeline on the embedded engine's batches: a LightGBM pipeline (searched by Optuna under
    `--search tune`, then refitted) and the course baseline, on `settings.train_sample_rows` rows when set."""
    from taxi_duration.train import local as train_local

    categorical, numeric = train_local.columns(feature_set)
    wanted, keep = [*categorical, *numeric, TARGET, s.PICKUP], settings.train_sample_rows
    rows = _training_rows(prepared, wanted, categorical, keep, total)
    if settings.search is Search.TUNE:
        fitted = _tuned(prepared, rows, wanted, categorical, feature_set, settings, on_progress, work)
    else:
        fitted = _boosted(prepared, rows, feature_set, settings, on_progress, work)
    booster = fitted.pipeline.named_steps["model"].booster_
    names = list(fitted.pipeline[:-1].get_feature_names_out())
    importances = dict(zip(names, booster.feature_importance(importance_type="gain").tolist(), strict=True))
    return Trained(
        kind="sklearn",
        model=bundle_io.SklearnPredictor(fitted.pipeline),
        course=bundle_io.SklearnPredictor(CourseBaseline().fit_batches(course_rows(prepared, keep))),
        chosen="lightgbm",
        params={**train_local.LGBM_PARAMS, **fitted.params, "month_decay": fitted.decay},
        importances=importances,
        global_mean=float(rows.mean),
        candidates=[
            {"name": f"trial-{t['number']}", "params": drawn(t), "validate_rmse": t["validate_rmse"]}
            for t in fitted.study.get("history", [])
        ],
        rows=rows.count,
        study=fitted.study,
        judged=fitted.judged,
    )


def _training_rows(
    prepared: Prepared, wanted: list[str], categorical: list[str], keep: int | None, total: int
) -> _Rows:
    """Every training row, read a batch at a time, or `keep` of them drawn at random into one frame."""
    if keep is None or keep >= total:
        batches: Callable[[], Iterable[pd.DataFrame]] = functools.partial(prepared.batches, "train", wanted)
        encoded = categories(prepared, "train", categorical)
        mean = prepared.parts["train"].select(nw.col(TARGET).mean()).collect().item()
        return _Rows(batches, encoded, mean, total)
    # A sample is small: the user asked for a quick model.
    train = pd.concat(sample_batches(prepared.batches("train", wanted), total, keep))
    return _Rows(lambda: [train], train, train[TARGET].mean(), len(train))


def _newest(prepared: Prepared) -> Month | None:
    """The newest training month, whose rows weigh most (a split by file has no months to weigh)."""
    split = prepared.split
    return split.train[-1] if isinstance(split, TimeSplit) else None


def _boosted(
    prepared: Prepared, rows: _Rows, feature_set: FeatureSet, settings: Settings, on_progress: OnProgress, work: Path
) -> _Fitted:
    """LightGBM with the project's parameters (fewer trees under `--search quick`), older months weighing
    `settings.month_decay` per month."""
    from taxi_duration.train import local as train_local

    params = {"n_estimators": 100} if settings.search is Search.QUICK else {}
    rounds = functools.partial(on_progress, "boosting rounds")
    weigh = train_local.month_weights(_newest(prepared), settings.month_decay)
    pipeline = train_local.fit_batches(
        rows.batches(), rows.categories, feature_set, work / "spool", on_round=rounds, weigh=weigh, **params
    )
    return _Fitted(pipeline, params, settings.month_decay)


def _tuned(
    prepared: Prepared,
    rows: _Rows,
    wanted: list[str],
    categorical: list[str],
    feature_set: FeatureSet,
    settings: Settings,
    on_progress: OnProgress,
    work: Path,
) -> _Fitted:
    """The Optuna study's choice, judged on the validation month, then refitted on training and validation rows
    (the refit is the model; the choice is kept as `judged`)."""
    from taxi_duration.train import tune

    split = prepared.split
    validate = functools.partial(prepared.batches, "validate", wanted)
    tuned = tune.search(
        rows.batches(),
        validate(),
        rows.categories,
        feature_set,
        work / "tune",
        settings.tune_trials,
        settings.tune_budget_s,
        on_trial=functools.partial(on_progress, "trials"),
        newest=_newest(prepared),
    )
    pipeline = tune.refit(
        rows.batches(),
        validate(),
        pd.concat([rows.categories[categorical], categories(prepared, "validate", categorical)]),
        feature_set,
        work / "refit",
        tuned.best,
        settings.refit_tree_scale,
        on_round=functools.partial(on_progress, "refit rounds"),
        newest=split.validate if isinstance(split, TimeSplit) else None,
    )
    params = {**tuned.best.params, "n_estimators": pipeline.named_steps["model"].n_estimators}
    return _Fitted(
        pipeline, params, tuned.best.month_decay, bundle_io.SklearnPredictor(tuned.pipeline), tuned.summary()
    )


def categories(prepared: Prepared, role: str, categorical: list[str]) -> pd.DataFrame:
    """The distinct combinations of a part's categorical features (what the model's encoder is fitted on)."""
    # A group-by, not `unique()`: narwhals numbers every row in a window for that on DuckDB, which held about
    # 125 bytes a row (5.7 GiB at 45M rows) for some 64k combinations.
    rows = "__rows"
    return prepared.parts[role].group_by(*categorical).agg(nw.len().alias(rows)).drop(rows).collect().to_pandas()


def course_rows(prepared: Prepared, keep: int | None) -> Iterator[pd.DataFrame]:
    """The course baseline's training rows (only its inputs), in pickup order: the same rows in the same order
    give the same least-squares fit, digit for digit. `keep` of them, drawn at random, when set."""
    batches = prepared.batches("train", [*CourseBaseline.INPUTS, TARGET], course_rows=True)
    if keep is None:
        return batches
    total = prepared.rows("train", course_rows=True)
    return sample_batches(batches, total, keep)


def fit_spark(
    prepared: Prepared,
    feature_set: FeatureSet,
    settings: Settings,
    on_progress: OnProgress,
    total: int,
    runtime: Runtime,
) -> Trained:
    """The big-data pipeline on Spark: the concurrent search over MLlib (and XGBoost) families, and the course
    baseline, on a sample of `settings.train_sample_rows` rows when set."""
    from pyspark.sql import functions as F

    from taxi_duration.train import spark as train_spark
    from taxi_duration.train import spark_course, spark_search

    train_part, course_part, rows = prepared.parts["train"], prepared.course_parts["train"], total
    if settings.train_sample_rows is not None and settings.train_sample_rows < total:
        train_part = runtime.sample(train_part, settings.train_sample_rows, seed=0)
        course_part = runtime.sample(course_part, settings.train_sample_rows, seed=0)
        rows = int(train_part.select(nw.len()).collect().item())
    train, validate = train_part.to_native(), prepared.parts["validate"].to_native()
    split = prepared.split
    result = train_spark.fit(
        train,
        validate,
        feature_set,
        parallelism=settings.spark_parallelism,
        search=settings.search,
        on_candidate=functools.partial(on_progress, "candidates"),
        months=(split.train[-1], split.validate) if isinstance(split, TimeSplit) else None,
        month_decay=settings.month_decay,
        budget_s=settings.tune_budget_s,
        tree_scale=settings.refit_tree_scale,
        trials=settings.tune_trials,
        on_trial=functools.partial(on_progress, "trials"),
    )
    mean = train.agg(F.avg(TARGET)).first()
    return Trained(
        kind="mllib",
        model=result.chosen,
        course=spark_course.fit_course(course_part.to_native()),
        chosen=result.name,
        params=result.params,
        importances=result.importances,
        global_mean=float(mean[0]) if mean is not None else float("nan"),
        candidates=[
            *({"name": c.name, "params": c.params, "validate_rmse": c.rmse} for c in result.candidates),
            *({**job, "validate_rmse": None, "skipped": "the search's time budget"} for job in result.skipped),
        ],
        search=spark_search.timeline(result.candidates),
        rows=rows,
        judged=result.judged,
        study=result.study,
    )
