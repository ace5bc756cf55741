"""The training job: validate -> features -> train -> evaluate -> log -> register, on either pipeline.

The embedded engine feeds the traditional pipeline (pandas batches -> scikit-learn + LightGBM, never one
frame of a part); Spark feeds the big-data one (MLlib, trained where the data lies). Both are judged
against the same baselines on the same validation and test rows, logged to the same MLflow experiment
and registered under the same name.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import narwhals as nw
import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from taxi_duration.core import schema as s
from taxi_duration.core.config import Engine, FeatureSet, Search, Settings
from taxi_duration.core.storage import Location
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import TARGET, TARGET_RANGE
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.ingest.quality import QualityReport
from taxi_duration.registry import tracking
from taxi_duration.serve import bundle as bundle_meta
from taxi_duration.serve import intervals
from taxi_duration.serve import scorer as scorer_io
from taxi_duration.train import metrics as evaluate
from taxi_duration.train import model as bundle_io
from taxi_duration.train import plots
from taxi_duration.train.baselines import CourseBaseline
from taxi_duration.train.dataset import Prepared, prepare, sample_batches
from taxi_duration.train.splits import Split, TimeSplit

STEPS = ("validate and featurize", "train", "evaluate", "log to MLflow", "register")
# Progress within a step: (what is counted, how many are done, out of how many).
OnProgress = Callable[[str, int, int], None]
# (name in scores and metrics, part, on the course's uncleaned rows?)
SCORED = (
    ("validate", "validate", False),
    ("test", "test", False),
    ("validate_course_rows", "validate", True),
    ("test_course_rows", "test", True),
)
PLOT_SAMPLE = 50_000


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
    trained_rows: int  # the model's training rows: all modeled training rows, or the sample asked for
    params: dict[str, Any] = field(default_factory=dict)  # the chosen model's, as logged (`model.` params)
    # Share of the test sample's trips inside their p10-p90 interval, overall (`all`) and by pickup borough.
    coverage: dict[str, dict[str, float]] = field(default_factory=dict)

    def overall(self, role: str) -> dict[str, dict[str, float]]:
        """Overall metrics of the model and each baseline on one part."""
        return {name: s["overall"]["all"] for name, s in self.scores[role].items()}


def file_digest(path: Location) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(files: dict[str, list[InputFile]], quality: dict[str, QualityReport], rows: dict[str, int]) -> dict:
    """Which data a run saw: every file (name, bytes, SHA-256, month), and rows read, clean and modeled."""
    return {
        role: {
            "files": [
                {"name": f.path.name, "bytes": f.path.stat().st_size, "sha256": file_digest(f.path), "month": f.month}
                for f in found
            ],
            "input_rows": quality[role].input_rows,
            "clean_rows": quality[role].clean_rows,
            "modeled_rows": rows[role],
        }
        for role, found in files.items()
    }


def validation_key(data: dict[str, Any]) -> str:
    """One id for the validation rows: the same files under the same target range give the same key."""
    part = data["validate"]
    identity = {"files": [f["sha256"] for f in part["files"]], "rows": part["modeled_rows"], "range": TARGET_RANGE}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def requirements() -> list[str]:
    """The model's pip requirements: this package's own runtime pins (no extras), read from its metadata."""
    needed = importlib.metadata.requires("taxi-duration-predictor") or []
    return [r.split(";")[0].strip() for r in needed if "extra ==" not in r]


@dataclass
class _Trained:
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


def _train_local(
    prepared: Prepared, feature_set: FeatureSet, settings: Settings, on_progress: OnProgress, total: int, work: Path
) -> _Trained:
    from taxi_duration.train import local as train_local

    categorical, numeric = train_local.columns(feature_set)
    wanted, keep = [*categorical, *numeric, TARGET, s.PICKUP], settings.train_sample_rows
    split = prepared.split
    newest = split.train[-1] if isinstance(split, TimeSplit) else None  # a split by file has no months to weigh
    if keep is None or keep >= total:
        batches: Callable[[], Iterable[pd.DataFrame]] = functools.partial(prepared.batches, "train", wanted)
        categories = _categories(prepared, "train", categorical)
        mean, rows = prepared.parts["train"].select(nw.col(TARGET).mean()).collect().item(), total
    else:  # a sample is small: the user asked for a quick model
        train = pd.concat(sample_batches(prepared.batches("train", wanted), total, keep))
        batches, categories, mean, rows = lambda: [train], train, train[TARGET].mean(), len(train)
    judged, study = None, {}
    if settings.search is Search.TUNE:
        from taxi_duration.train import tune

        validate = functools.partial(prepared.batches, "validate", wanted)
        tuned = tune.search(
            batches(),
            validate(),
            categories,
            feature_set,
            work / "tune",
            settings.tune_trials,
            settings.tune_budget_s,
            on_trial=functools.partial(on_progress, "trials"),
            newest=newest,
        )
        pipeline = tune.refit(
            batches(),
            validate(),
            pd.concat([categories[categorical], _categories(prepared, "validate", categorical)]),
            feature_set,
            work / "refit",
            tuned.best,
            settings.refit_tree_scale,
            on_round=functools.partial(on_progress, "refit rounds"),
            newest=split.validate if isinstance(split, TimeSplit) else None,
        )
        judged, study = bundle_io.SklearnPredictor(tuned.pipeline), tuned.summary()
        params = {**tuned.best.params, "n_estimators": pipeline.named_steps["model"].n_estimators}
        decay = tuned.best.month_decay
    else:
        params = {"n_estimators": 100} if settings.search is Search.QUICK else {}
        rounds = functools.partial(on_progress, "boosting rounds")
        decay = settings.month_decay
        weigh = train_local.month_weights(newest, decay)
        pipeline = train_local.fit_batches(
            batches(), categories, feature_set, work / "spool", on_round=rounds, weigh=weigh, **params
        )
    booster = pipeline.named_steps["model"].booster_
    names = list(pipeline[:-1].get_feature_names_out())
    importances = dict(zip(names, booster.feature_importance(importance_type="gain").tolist(), strict=True))
    return _Trained(
        kind="sklearn",
        model=bundle_io.SklearnPredictor(pipeline),
        course=bundle_io.SklearnPredictor(CourseBaseline().fit_batches(_course_rows(prepared, keep))),
        chosen="lightgbm",
        params={**train_local.LGBM_PARAMS, **params, "month_decay": decay},
        importances=importances,
        global_mean=float(mean),
        candidates=[
            {
                "name": f"trial-{t['number']}",
                "params": _drawn(t),
                "validate_rmse": t["validate_rmse"],
            }
            for t in study.get("history", [])
        ],
        rows=rows,
        study=study,
        judged=judged,
    )


def _categories(prepared: Prepared, role: str, categorical: list[str]) -> pd.DataFrame:
    """The distinct combinations of a part's categorical features (what the model's encoder is fitted on)."""
    # A group-by, not `unique()`: narwhals numbers every row in a window for that on DuckDB, which held about
    # 125 bytes a row (5.7 GiB at 45M rows) for some 64k combinations.
    rows = "__rows"
    return prepared.parts[role].group_by(*categorical).agg(nw.len().alias(rows)).drop(rows).collect().to_pandas()


def _course_rows(prepared: Prepared, keep: int | None) -> Iterator[pd.DataFrame]:
    """The course baseline's training rows (only its inputs), in pickup order: the same rows in the same order
    give the same least-squares fit, digit for digit. `keep` of them, drawn at random, when set."""
    batches = prepared.batches("train", [*CourseBaseline.INPUTS, TARGET], course_rows=True)
    if keep is None:
        return batches
    total = int(prepared.course_parts["train"].select(nw.len()).collect().item())
    return sample_batches(batches, total, keep)


def _train_spark(
    prepared: Prepared,
    feature_set: FeatureSet,
    settings: Settings,
    on_progress: OnProgress,
    total: int,
    runtime: Runtime,
) -> _Trained:
    from pyspark.sql import functions as F

    from taxi_duration.train import spark as train_spark
    from taxi_duration.train import spark_search

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
    )
    mean = train.agg(F.avg(TARGET)).first()
    return _Trained(
        kind="mllib",
        model=result.chosen,
        course=train_spark.fit_course(course_part.to_native()),
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
    )


def _score(
    prepared: Prepared, role: str, course_rows: bool, trained: _Trained, total: int
) -> tuple[dict[str, evaluate.Scores], pd.DataFrame | None]:
    """One part scored (a column per model and baseline, judged by `evaluate`), and, for the clean rows, a
    sample of about `PLOT_SAMPLE` of them with the model's predictions (for the plots and the interval)."""
    predictions = [evaluate.MODEL, *evaluate.BASELINES]
    keep = [TARGET, evaluate.BOROUGH, evaluate.HOUR, *bundle_meta.INPUT_COLUMNS]
    share = 0.0 if course_rows else min(1.0, PLOT_SAMPLE / max(total, 1))
    if trained.kind == "mllib":
        from pyspark.sql import functions as F

        frame = trained.model.transform(
            (prepared.course_parts if course_rows else prepared.parts)[role].to_native()
        ).withColumnRenamed("prediction", evaluate.MODEL)
        course, pair, mean = evaluate.BASELINES
        frame = trained.course.transform(frame).withColumnRenamed("prediction", course)
        frame = frame.select(
            *keep,
            evaluate.MODEL,
            course,
            F.col(bundle_meta.PAIR_MEDIAN).alias(pair),
            F.lit(trained.global_mean).alias(mean),
        )
        sample = frame.sample(fraction=share, seed=0).toPandas() if share else None
        return evaluate.score(nw.from_native(frame), predictions), sample
    # A batch at a time: the sums of the batches add up to the part's, and each gives its share of the sample.
    sums, samples, random = [], [], np.random.default_rng(0)
    for part in prepared.batches(role, course_rows=course_rows):
        frame = part[keep].assign(
            **{evaluate.MODEL: np.clip(trained.model.predict(part), 0.0, None)},
            **bundle_io.baseline_columns(part, trained.course, trained.global_mean),
        )
        sums.append(evaluate.sums(nw.from_native(frame, eager_only=True), predictions))
        samples.append(frame.sample(frac=share, random_state=random))
    sample = pd.concat(samples, ignore_index=True) if share else None
    return evaluate.score_sums(evaluate.add_sums(sums), predictions), sample


def _log_figures(sample: pd.DataFrame, scores: dict[str, evaluate.Scores], importances: dict[str, float]) -> None:
    y, p, hour = sample[TARGET].to_numpy(), sample[evaluate.MODEL].to_numpy(), sample[evaluate.HOUR].to_numpy()
    figures = {
        "plots/predicted_vs_actual.png": plots.predicted_vs_actual(y, p, "Validation month: predicted vs actual"),
        "plots/residuals_by_hour.png": plots.residuals_by_hour(y, p, hour, "Validation month: residuals by hour"),
        "plots/rmse_by_borough.png": plots.rmse_by_borough(scores, "Validation RMSE by pickup borough"),
    }
    if importances:
        figures["plots/feature_importance.png"] = plots.feature_importance(importances, "Feature importance (gain)")
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)


def _log_search(client: mlflow.MlflowClient, parent: Any, search: list[dict[str, Any]], parallelism: int) -> None:
    """Show the Spark search's parallelism: one nested run per candidate, started and ended when the candidate
    was (so the MLflow UI lists them side by side in time), and on the parent run the timeline as JSON and as
    a chart, with the most candidates that ran at once."""
    from taxi_duration.train.spark_search import peak_concurrency

    timeline = []
    for row in search:
        run_id = _log_child(
            client,
            parent,
            f"candidate-{row['candidate']}-{row['name']}",
            (row["started_at"], row["ended_at"]),
            {k: row[k] for k in ("validate_rmse", "duration_s", "start_s", "end_s")},
            {"family": row["name"], **row["params"]},
            {"spark_job_group": row["spark_job_group"], "spark_job_ids": ",".join(map(str, row["spark_job_ids"]))},
        )
        timeline.append({**row, "run_id": run_id})
    mlflow.log_dict({"parallelism": parallelism, "candidates": timeline}, "search/timeline.json")
    title = f"Candidate search: {len(timeline)} fits, {parallelism} at a time"
    mlflow.log_figure(plots.search_timeline(timeline, title), "plots/search_timeline.png")
    mlflow.log_metrics(
        {
            "search_peak_concurrency": peak_concurrency([(r["start_s"], r["end_s"]) for r in timeline]),
            "search_wall_s": max(r["end_s"] for r in timeline),
            "search_fit_s": sum(r["duration_s"] for r in timeline),
        }
    )


def _drawn(trial: dict[str, Any]) -> dict[str, Any]:
    """What a trial of the study's history drew: its LightGBM parameters and its `month_decay`."""
    return {**trial["params"], "month_decay": trial["month_decay"]}


def _log_study(client: mlflow.MlflowClient, parent: Any, study: dict[str, Any]) -> None:
    """The tuned search: one nested run per trial (its parameters; its validation RMSE, rounds, seconds and
    whether it was pruned; started and ended when the trial was), and on the parent run the study's summary
    (`search/study.json`, with each trial's run id) and its numbers as `tune_*` metrics."""
    first = min(t["started_at"] for t in study["history"])
    history = []
    for t in study["history"]:
        run_id = _log_child(
            client,
            parent,
            f"trial-{t['number']}",
            (t["started_at"], t["ended_at"]),
            {
                "validate_rmse": t["validate_rmse"],
                "rounds": t["rounds"],
                "pruned": int(t["pruned"]),
                "duration_s": t["duration_s"],
                "start_s": t["started_at"] - first,
                "end_s": t["ended_at"] - first,
            },
            _drawn(t),
            {"optuna_state": "PRUNED" if t["pruned"] else "COMPLETE"},
        )
        history.append({**t, "run_id": run_id})
    mlflow.log_dict({**study, "history": history}, "search/study.json")
    mlflow.log_metrics(
        {
            f"tune_{k}": study[k]
            for k in ("trials", "pruned", "best_trial", "best_validate_rmse", "best_rounds", "wall_s", "budget_s")
        }
    )


def _log_child(
    client: mlflow.MlflowClient,
    parent: Any,
    name: str,
    span: tuple[float, float],
    metrics: dict[str, float],
    params: dict[str, Any],
    tags: dict[str, str],
) -> str:
    """A nested run under `parent` for one fit of a search, started and ended at `span` (seconds since the
    epoch), so the MLflow UI lists the fits side by side in time; its run id."""
    child = client.create_run(
        parent.info.experiment_id,
        start_time=int(span[0] * 1000),
        tags={MLFLOW_PARENT_RUN_ID: parent.info.run_id, **tags},
        run_name=name,
    )
    ended = int(span[1] * 1000)
    client.log_batch(
        child.info.run_id,
        metrics=[Metric(k, v, ended, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in _flat(params).items()],
    )
    client.set_terminated(child.info.run_id, "FINISHED", end_time=ended)
    return str(child.info.run_id)


def _log_metrics(scores: dict[str, dict[str, evaluate.Scores]]) -> None:
    values = {
        f"{role}_{name}_{metric}": value
        for role, by_name in scores.items()
        for name, result in by_name.items()
        for metric, value in result["overall"]["all"].items()
        if metric != "rows" and np.isfinite(value)
    }
    mlflow.log_metrics(values)


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
    step_s: dict[str, float] = {}
    marks: list[tuple[str, float]] = []

    def step(name: str) -> None:
        now = time.perf_counter()
        if marks:
            step_s[marks[-1][0]] = now - marks[-1][1]
        marks.append((name, now))
        on_step(name)

    if settings.search is Search.TUNE:
        _check_tune(settings)
    store = tracking.connect(settings)
    tracking.recover(store)
    runtime = Runtime.open(settings)
    prepared: Prepared | None = None
    work = Path(tempfile.mkdtemp(prefix="train-", dir=settings.scratch_dir()))
    engine = str(runtime.engine)
    tags = tracking.run_tags({"engine": engine, "feature_set": feature_set})
    try:
        with mlflow.start_run(run_name=f"{engine}-{feature_set}-{split.validate}", tags=tags) as run:
            step(STEPS[0])
            prepared = prepare(runtime, files, split, work / "data")
            rows = {role: int(part.select(nw.len()).collect().item()) for role, part in prepared.parts.items()}
            data = fingerprint(prepared.files, prepared.quality, rows)
            mlflow.log_dict(data, "data.json")
            mlflow.log_dict({r: q.to_dict() for r, q in prepared.quality.items()}, "quality.json")
            tracking.crash_point("train")
            step(STEPS[1])
            trained = (
                _train_spark(prepared, feature_set, settings, on_progress, rows["train"], runtime)
                if runtime.engine is Engine.SPARK
                else _train_local(prepared, feature_set, settings, on_progress, rows["train"], work)
            )
            if trained.judged is not None:  # the refit trained on the validation month too
                trained = replace(trained, rows=trained.rows + rows["validate"])
            mlflow.log_params(
                {
                    "engine": engine,
                    "feature_set": feature_set,
                    "model": trained.chosen,
                    "train_months": ",".join(map(str, split.train)),
                    "validate_month": str(split.validate),
                    "test_month": str(split.test),
                    "feature_store_version": prepared.store.manifest.version,
                    "target_range_min": f"{TARGET_RANGE[0]}-{TARGET_RANGE[1]}",
                    "trained_rows": trained.rows,
                    **{f"model.{k}": v for k, v in _flat(trained.params).items()},
                }
            )
            if trained.candidates:
                mlflow.log_dict({"candidates": trained.candidates}, "candidates.json")
            if trained.search:
                _log_search(store.client, run, trained.search, settings.spark_parallelism)
            if trained.study:
                _log_study(store.client, run, trained.study)
            step(STEPS[2])
            scores, samples = {}, {}
            for done, (name, role, course_rows) in enumerate(SCORED, 1):
                scored = trained if trained.judged is None or role == "test" else replace(trained, model=trained.judged)
                scores[name], sample = _score(prepared, role, course_rows, scored, rows[role])
                if sample is not None:
                    samples[name] = sample
                on_progress("parts scored", done, len(SCORED))
            sample = samples["validate"]
            interval = intervals.fit(sample[TARGET], sample[evaluate.MODEL], sample[evaluate.BOROUGH])
            test = samples["test"]
            coverage = interval.coverage_by(test[TARGET], test[evaluate.MODEL], test[evaluate.BOROUGH])
            mlflow.log_metric("test_interval_coverage", coverage["all"]["coverage"])
            mlflow.log_dict(coverage, "interval_coverage.json")
            _log_metrics(scores)
            if trained.judged is not None:  # the refit's gain, for the record: no choice reads the test month
                before, _ = _score(prepared, "test", False, replace(trained, model=trained.judged), rows["test"])
                mlflow.log_metric("test_prerefit_model_rmse", before[evaluate.MODEL]["overall"]["all"]["rmse"])
            mlflow.log_dict(scores, "scores.json")
            _log_figures(sample, scores["validate"], trained.importances)
            step(STEPS[3])
            validation = scores["validate"][evaluate.MODEL]["overall"]["all"]
            meta = bundle_meta.Meta(
                name=tracking.MODEL_NAME,
                kind=trained.kind,
                feature_set=feature_set,
                train_months=[str(m) for m in split.train],
                validate_month=str(split.validate),
                store_version=prepared.store.manifest.version,
                target_range=TARGET_RANGE,
                global_mean=trained.global_mean,
                params={"model": trained.chosen, **_flat(trained.params)},
                validation=validation,
                interval=interval.to_json(),
            )
            bundle = bundle_io.write(work / "bundle", meta, prepared.store, trained.model, trained.course)
            example = sample[list(bundle_meta.INPUT_COLUMNS)].head(5)
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(scorer_io.__file__).with_name("pyfunc_entry.py")),
                artifacts={"bundle": str(bundle)},
                signature=bundle_meta.SIGNATURE,
                input_example=example,
                pip_requirements=requirements(),
            )
            tracking.crash_point("register")
            step(STEPS[4])
            decision = tracking.register(
                store,
                info.model_uri,
                run.info.run_id,
                feature_set,
                validation_key(data),
                validation["rmse"],
                _rescorer(prepared),
                model_id=info.model_id,
            )
            mlflow.set_tag(tracking.OUTCOME_TAG, decision.reason)
            step("done")
            mlflow.log_dict(step_s, "timings.json")
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
            scores=scores,
            tracking_uri=store.tracking_uri,
            ui_command=store.ui_command,
            elapsed_s=time.perf_counter() - started,
            step_s=step_s,
            trained_rows=trained.rows,
            params=_flat(trained.params),
            coverage=coverage,
        )
    finally:
        if prepared is not None:
            prepared.release()  # the Spark session outlives the job (it is shared by the process)
        runtime.close()
        shutil.rmtree(work, ignore_errors=True)


def _check_tune(settings: Settings) -> None:
    """Fail before any work when the tuned search cannot run: on the embedded engines without Optuna (Spark's
    tuned search widens its grid instead: `train_spark.GRIDS`)."""
    from taxi_duration.train import tune

    if settings.engine is not Engine.SPARK:
        tune.optuna_module()


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


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
        "interval_coverage": outcome.coverage,
    }
