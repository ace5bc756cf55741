"""The training job: validate -> features -> train -> evaluate -> log -> register, on either pipeline.

The embedded engine feeds the traditional pipeline (pandas batches -> scikit-learn + LightGBM, never one
frame of a part); Spark feeds the big-data one (MLlib, trained where the data lies). Both are judged
against the same baselines on the same validation and test rows, logged to the same MLflow experiment
and registered under the same name.

This module is that pipeline, a function per step of `STEPS`. The trainers' adapters are `adapters`, what the
run logs besides the model `runlog`, and which data and code it used `lineage`.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from taxi_duration.core.config import Engine, FeatureSet, Search, Settings
from taxi_duration.core.process import tree_cpu
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import TARGET, TARGET_RANGE
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.ingest.quality import QualityReport
from taxi_duration.registry import tracking
from taxi_duration.serve import bundle as bundle_meta
from taxi_duration.serve import intervals
from taxi_duration.serve import scorer as scorer_io
from taxi_duration.train import lineage, runlog
from taxi_duration.train import metrics as evaluate
from taxi_duration.train import model as bundle_io
from taxi_duration.train.adapters import OnProgress, Trained, check_tune, fit_local, fit_spark
from taxi_duration.train.dataset import Prepared, prepare
from taxi_duration.train.evaluation import score_part
from taxi_duration.train.splits import Split

STEPS = ("validate and featurize", "train", "evaluate", "log to MLflow", "register")
# (name in scores and metrics, part, on the course's uncleaned rows?)
SCORED = (
    ("validate", "validate", False),
    ("test", "test", False),
    ("validate_course_rows", "validate", True),
    ("test_course_rows", "test", True),
)


@dataclass
class Outcome:
    """What a training run produced, for the summary table and for scripts."""

    run_id: str
    model_uri: str
    decision: tracking.Decision
    engine: str
    feature_set: str
    chosen: str
    split: str
    quality: dict[str, QualityReport]
    rows: dict[str, int]
    scores: dict[str, dict[str, evaluate.Scores]]
    tracking_uri: str
    ui_command: str
    elapsed_s: float
    step_s: dict[str, float]
    step_cpu_s: dict[str, float]  # CPU of the job's process tree in each step (local mode: the executors' too)
    trained_rows: int  # the model's training rows: all modeled training rows, or the sample asked for
    params: dict[str, Any] = field(default_factory=dict)  # the chosen model's, as logged (`model.` params)
    # Share of the test sample's trips inside their p10-p90 interval, overall (`all`) and by pickup borough.
    coverage: dict[str, dict[str, float]] = field(default_factory=dict)

    def overall(self, role: str) -> dict[str, dict[str, float]]:
        """Overall metrics of the model and each baseline on one part."""
        return {name: s["overall"]["all"] for name, s in self.scores[role].items()}


@dataclass
class _Workspace:
    """What the job opens before its first step and closes after its last (or a failure): the MLflow store, the
    engine and a scratch folder (where Spark writes the prepared parts)."""

    store: tracking.Store
    runtime: Runtime
    work: Path


@contextlib.contextmanager
def _workspace(settings: Settings) -> Iterator[_Workspace]:
    store = tracking.connect(settings)
    tracking.recover(store)
    runtime = Runtime.open(settings)
    space = _Workspace(store, runtime, Path(tempfile.mkdtemp(prefix="train-", dir=settings.scratch_dir())))
    try:
        yield space
    finally:
        runtime.close()
        shutil.rmtree(space.work, ignore_errors=True)


class _Clock:
    """Calls `on_step(name)` as each step starts, and keeps each step's seconds and the CPU seconds of this
    process and its children (a local Spark JVM and its workers; on a cluster, the driver's), until the next
    one starts; the engine marks its work with the step's name (`Runtime.mark_step`)."""

    def __init__(self, on_step: Callable[[str], None], runtime: Runtime) -> None:
        self.on_step, self.runtime = on_step, runtime
        self.step_s: dict[str, float] = {}
        self.step_cpu_s: dict[str, float] = {}
        self.current: tuple[str, float, float] | None = None

    def start(self, name: str) -> None:
        now, cpu = time.perf_counter(), tree_cpu()
        if self.current is not None:
            self.step_s[self.current[0]] = now - self.current[1]
            self.step_cpu_s[self.current[0]] = cpu - self.current[2]
        self.current = (name, now, cpu)
        self.runtime.mark_step(name)
        self.on_step(name)


@dataclass
class _Evaluated:
    """What the evaluate step measured: every part's scores, the validation month's sample with the model's
    predictions, the interval fitted on it, and the interval's coverage of the test month's sample."""

    scores: dict[str, dict[str, evaluate.Scores]]
    sample: pd.DataFrame
    interval: intervals.Interval
    coverage: dict[str, dict[str, float]]

    @property
    def validation(self) -> dict[str, float]:
        """The model's overall metrics on the validation month (what the champion rule compares)."""
        return self.scores["validate"][evaluate.MODEL]["overall"]["all"]


def train(
    settings: Settings,
    files: list[InputFile],
    split: Split,
    feature_set: FeatureSet,
    on_step: Callable[[str], None] = lambda step: None,
    on_progress: OnProgress = lambda what, done, total: None,
) -> Outcome:
    """Run the whole job and return what it produced; the MLflow run is FINISHED only if every step was.

    `on_step(name)` is called as each of `STEPS` starts (then with "done"), `on_progress` within the long
    ones: boosting rounds or candidates of the search while training, parts scored while evaluating.
    """
    started = time.perf_counter()
    if settings.search is Search.TUNE:
        check_tune(settings)
    with _workspace(settings) as space:
        clock = _Clock(on_step, space.runtime)
        engine = str(space.runtime.engine)
        tags = tracking.run_tags({"engine": engine, "feature_set": feature_set})
        with mlflow.start_run(run_name=f"{engine}-{feature_set}-{split.validate}", tags=tags) as run:
            clock.start(STEPS[0])
            prepared = prepare(space.runtime, files, split, space.work / "data")
            rows, data = _record_data(prepared)
            tracking.crash_point("train")
            clock.start(STEPS[1])
            trained = _train(space, prepared, run, settings, feature_set, rows, on_progress)
            clock.start(STEPS[2])
            evaluated = _evaluate(prepared, trained, rows, on_progress)
            clock.start(STEPS[3])
            info = _log_model(space.work, prepared, trained, evaluated, feature_set)
            tracking.crash_point("register")
            clock.start(STEPS[4])
            decision = _register(space.store, prepared, info, run.info.run_id, feature_set, data, evaluated)
            clock.start("done")
            mlflow.log_dict(clock.step_s, "timings.json")
            mlflow.log_dict(clock.step_cpu_s, "timings_cpu.json")
        return Outcome(
            run_id=run.info.run_id,
            model_uri=f"models:/{tracking.MODEL_NAME}/{decision.version}",
            decision=decision,
            engine=engine,
            feature_set=feature_set,
            chosen=trained.chosen,
            split=str(split),
            quality=prepared.quality,
            rows=rows,
            scores=evaluated.scores,
            tracking_uri=space.store.tracking_uri,
            ui_command=space.store.ui_command,
            elapsed_s=time.perf_counter() - started,
            step_s=clock.step_s,
            step_cpu_s=clock.step_cpu_s,
            trained_rows=trained.rows,
            params=runlog.flat(trained.params),
            coverage=evaluated.coverage,
        )


def _record_data(prepared: Prepared) -> tuple[dict[str, int], dict[str, Any]]:
    """Validate and featurize, recorded: each part's modeled rows, and which data the run saw (`data.json`) and
    what validation kept of it (`quality.json`)."""
    rows = {role: prepared.rows(role) for role in prepared.parts}
    data = lineage.fingerprint(prepared.files, prepared.quality, rows)
    mlflow.log_dict(data, "data.json")
    mlflow.log_dict({r: q.to_dict() for r, q in prepared.quality.items()}, "quality.json")
    return rows, data


def _train(
    space: _Workspace,
    prepared: Prepared,
    run: Any,
    settings: Settings,
    feature_set: FeatureSet,
    rows: dict[str, int],
    on_progress: OnProgress,
) -> Trained:
    """Train: the engine's trainer, then what it trained logged to the run (its parameters, its candidates, and
    the search's fits as nested runs)."""
    split = prepared.split
    trained = (
        fit_spark(prepared, feature_set, settings, on_progress, rows["train"], space.runtime)
        if space.runtime.engine is Engine.SPARK
        else fit_local(prepared, feature_set, settings, on_progress, rows["train"], space.work)
    )
    if trained.judged is not None:  # the refit trained on the validation month too
        trained = replace(trained, rows=trained.rows + rows["validate"])
    mlflow.log_params(
        {
            "engine": str(space.runtime.engine),
            "feature_set": feature_set,
            "model": trained.chosen,
            "train_months": ",".join(map(str, split.train)),
            "validate_month": str(split.validate),
            "test_month": str(split.test),
            "feature_store_version": prepared.store.manifest.version,
            "target_range_min": f"{TARGET_RANGE[0]}-{TARGET_RANGE[1]}",
            "trained_rows": trained.rows,
            **{f"model.{k}": v for k, v in runlog.flat(trained.params).items()},
        }
    )
    if trained.candidates:
        mlflow.log_dict({"candidates": trained.candidates}, "candidates.json")
    if trained.search:
        runlog.log_search(space.store.client, run, trained.search, settings.spark_parallelism)
    if trained.study:
        runlog.log_study(space.store.client, run, trained.study)
    return trained


def _evaluate(prepared: Prepared, trained: Trained, rows: dict[str, int], on_progress: OnProgress) -> _Evaluated:
    """Evaluate: each part of `SCORED` scored, the interval fitted on the validation month's sample and its
    coverage measured on the test month's, all logged with the metrics, the scores and the figures."""
    scores, samples = {}, {}
    for done, (name, role, course_rows) in enumerate(SCORED, 1):
        scored = trained if trained.judged is None or role == "test" else replace(trained, model=trained.judged)
        scores[name], sample = score_part(prepared, role, course_rows, scored, rows[role])
        if sample is not None:
            samples[name] = sample
        on_progress("parts scored", done, len(SCORED))
    sample = samples["validate"]
    interval = intervals.fit(sample[TARGET], sample[evaluate.MODEL], sample[evaluate.BOROUGH])
    test = samples["test"]
    coverage = interval.coverage_by(test[TARGET], test[evaluate.MODEL], test[evaluate.BOROUGH])
    mlflow.log_metric("test_interval_coverage", coverage["all"]["coverage"])
    mlflow.log_dict(coverage, "interval_coverage.json")
    runlog.log_metrics(scores)
    if trained.judged is not None:  # the refit's gain, for the record: no choice reads the test month
        before, _ = score_part(prepared, "test", False, replace(trained, model=trained.judged), rows["test"])
        mlflow.log_metric("test_prerefit_model_rmse", before[evaluate.MODEL]["overall"]["all"]["rmse"])
    mlflow.log_dict(scores, "scores.json")
    runlog.log_figures(sample, scores["validate"], trained.importances)
    return _Evaluated(scores, sample, interval, coverage)


def _log_model(work: Path, prepared: Prepared, trained: Trained, evaluated: _Evaluated, feature_set: FeatureSet) -> Any:
    """Log to MLflow: the bundle (model, baselines, feature store, interval) written and logged as the run's
    pyfunc model; MLflow's `ModelInfo` of it."""
    split = prepared.split
    meta = bundle_meta.Meta(
        name=tracking.MODEL_NAME,
        kind=trained.kind,
        feature_set=feature_set,
        train_months=[str(m) for m in split.train],
        validate_month=str(split.validate),
        store_version=prepared.store.manifest.version,
        target_range=TARGET_RANGE,
        global_mean=trained.global_mean,
        params={"model": trained.chosen, **runlog.flat(trained.params)},
        validation=evaluated.validation,
        interval=evaluated.interval.to_json(),
    )
    bundle = bundle_io.write(work / "bundle", meta, prepared.store, trained.model, trained.course)
    example = evaluated.sample[list(bundle_meta.INPUT_COLUMNS)].head(5)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(scorer_io.__file__).with_name("pyfunc_entry.py")),
        artifacts={"bundle": str(bundle)},
        signature=bundle_meta.SIGNATURE,
        input_example=example,
        pip_requirements=lineage.requirements(),
    )


def _register(
    store: tracking.Store,
    prepared: Prepared,
    info: Any,
    run_id: str,
    feature_set: FeatureSet,
    data: dict[str, Any],
    evaluated: _Evaluated,
) -> tracking.Decision:
    """Register: the model version, and whether it is the new champion (the champion rule's decision, also the
    run's outcome tag)."""
    decision = tracking.register(
        store,
        info.model_uri,
        run_id,
        feature_set,
        lineage.validation_key(data),
        evaluated.validation["rmse"],
        _rescorer(prepared),
        model_id=info.model_id,
    )
    mlflow.set_tag(tracking.OUTCOME_TAG, decision.reason)
    return decision


def _rescorer(prepared: Prepared) -> Callable[[str], float]:
    def rescore(model_uri: str) -> float:
        champion = mlflow.pyfunc.load_model(model_uri)
        inputs = list(bundle_meta.INPUT_COLUMNS)
        actual, predicted = [], []
        for raw in prepared.batches("validate", [*inputs, TARGET]):  # only when the champion was judged elsewhere
            actual.append(raw[TARGET].to_numpy(float))
            predicted.append(np.asarray(champion.predict(raw[inputs]), dtype=float))
        return evaluate.metrics(np.concatenate(actual), np.concatenate(predicted))["rmse"]

    return rescore


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """The outcome as a JSON-ready dict (for `--out` files and scripts)."""
    return {
        "run_id": outcome.run_id,
        "model_uri": outcome.model_uri,
        "decision": asdict(outcome.decision),
        "engine": outcome.engine,
        "feature_set": outcome.feature_set,
        "model": outcome.chosen,
        "split": outcome.split,
        "rows": outcome.rows,
        "trained_rows": outcome.trained_rows,
        "params": outcome.params,
        "scores": outcome.scores,
        "tracking_uri": outcome.tracking_uri,
        "elapsed_s": round(outcome.elapsed_s, 1),
        "step_s": {k: round(v, 1) for k, v in outcome.step_s.items()},
        "step_cpu_s": {k: round(v, 1) for k, v in outcome.step_cpu_s.items()},
        "interval_coverage": outcome.coverage,
    }
