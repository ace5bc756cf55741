"""The training job end to end, on a real MLflow store and registry: runs, artifacts, the champion rule,
crash recovery, and `evaluate` agreeing with what training logged."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from taxi_duration.core.config import CHAMPION, PRETRIP_CHAMPION, Settings, load_settings
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.monitor.scorecard import score_files
from taxi_duration.registry import tracking
from taxi_duration.train.job import STEPS, Outcome, train
from tests.conftest import SPLIT, SparkRun, store_settings


@pytest.fixture(scope="module")
def first(raw: list[InputFile], tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Outcome]:
    """A store whose first run trained `pretrip`, its champion. Tests may add runs and versions to it, but none
    that moves the alias: every test that reads it finds that run still the champion."""
    settings = store_settings(tmp_path_factory.mktemp("store"), feature_set="pretrip")
    return settings, train(settings, raw, SPLIT, "pretrip")


def test_a_run_logs_everything_and_beats_the_mean(first: tuple[Settings, Outcome]) -> None:
    settings, outcome = first
    client = MlflowClient(settings.mlflow_tracking_uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["feature_set"] == "pretrip"
    assert run.data.params["feature_store_version"]
    assert run.data.tags[tracking.PID_TAG] == str(os.getpid())
    metrics = run.data.metrics
    assert metrics["validate_model_rmse"] < 0.9 * metrics["validate_global_mean_rmse"]
    assert {"test_model_rmse", "validate_course_rmse", "validate_course_rows_course_rmse"} <= set(metrics)
    artifacts = {a.path for a in client.list_artifacts(outcome.run_id)}
    assert {"data.json", "quality.json", "scores.json", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(outcome.run_id, "plots")}
    assert "plots/predicted_vs_actual.png" in plots
    assert "plots/feature_importance.png" in plots
    data = client.download_artifacts(outcome.run_id, "data.json")
    assert "sha256" in Path(data).read_text()
    # Every step timed, in seconds and in CPU seconds of the job's processes (the whole job did work).
    cpu = json.loads(Path(client.download_artifacts(outcome.run_id, "timings_cpu.json")).read_text())
    assert list(cpu) == list(outcome.step_s) == list(STEPS)
    assert all(seconds >= 0 for seconds in cpu.values())
    assert sum(cpu.values()) > 0


def test_the_first_model_becomes_champion(first: tuple[Settings, Outcome]) -> None:
    settings, outcome = first
    assert outcome.decision.promoted
    assert outcome.decision.alias == PRETRIP_CHAMPION  # a pretrip model: the pretrip champion
    store = tracking.connect(settings)
    assert tracking.champion_version(store, PRETRIP_CHAMPION) == outcome.decision.version
    assert tracking.champion_version(store) is None


def test_evaluate_reproduces_the_logged_validation_scores(
    raw: list[InputFile], first: tuple[Settings, Outcome]
) -> None:
    settings, outcome = first
    validation_files = [f for f in raw if f.month == 202302]
    result = score_files(settings, f"models:/taxi-duration@{PRETRIP_CHAMPION}", validation_files)
    logged = outcome.overall("validate")
    for name in ("model", "course", "zone_pair_median", "global_mean"):
        assert result["metrics"][name]["rmse"] == pytest.approx(logged[name]["rmse"], rel=1e-9)
        assert result["metrics"][name]["rows"] == logged[name]["rows"]


@contextmanager
def mlflow_server(*args: str) -> Iterator[str]:
    """A real `mlflow server` on a free loopback port, up and answering; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", *args, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/health", server)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_store_opens_in_the_mlflow_ui_with_run_plots_and_champion(first: tuple[Settings, Outcome]) -> None:
    settings, outcome = first
    with mlflow_server("--backend-store-uri", str(settings.mlflow_tracking_uri)) as base:
        alias = httpx.get(
            f"{base}/api/2.0/mlflow/registered-models/alias",
            params={"name": "taxi-duration", "alias": PRETRIP_CHAMPION},
        )
        assert alias.status_code == 200, alias.text
        assert alias.json()["model_version"]["version"] == outcome.decision.version
        run = httpx.get(f"{base}/api/2.0/mlflow/runs/get", params={"run_id": outcome.run_id}).json()["run"]
        assert run["info"]["status"] == "FINISHED"
        plots = httpx.get(f"{base}/api/2.0/mlflow/artifacts/list", params={"run_id": outcome.run_id, "path": "plots"})
        assert "plots/residuals_by_hour.png" in {f["path"] for f in plots.json()["files"]}
        assert httpx.get(base).status_code == 200  # the UI's page itself


def test_training_against_a_tracking_server(raw: list[InputFile], tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'server.db'}"
    with mlflow_server("--backend-store-uri", store, "--artifacts-destination", str(tmp_path / "artifacts")) as base:
        settings = load_settings(data_dir=tmp_path, mlflow_tracking_uri=base, search="quick")
        outcome = train(settings, raw, SPLIT, "pretrip")
        assert outcome.decision.promoted
        assert outcome.ui_command == f"open {base}"
        champion = f"models:/taxi-duration@{PRETRIP_CHAMPION}"
        result = score_files(settings, champion, [f for f in raw if f.month == 202302])
        assert result["metrics"]["model"]["rmse"] == pytest.approx(outcome.overall("validate")["model"]["rmse"])
    assert any((tmp_path / "artifacts").rglob("predicted_vs_actual.png"))


def _wait_until_up(url: str, server: subprocess.Popen[bytes], timeout_s: float = 180.0) -> None:
    """Poll until the server answers (a condition, not a guess): fail fast if it died. At a load of 15 on two
    cores (a fresh-clone run beside benchmarks) it took over 90 s to start."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, "mlflow server exited"
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout_s} s")


def test_each_feature_set_has_its_own_champion(raw: list[InputFile], tmp_path: Path) -> None:
    """A pretrip model never competes with a with_distance one (which knows the metered miles): each is judged
    against its own feature set's champion, and the first of each takes its alias."""
    settings = store_settings(tmp_path)
    pretrip = train(settings, raw, SPLIT, "pretrip")
    with_distance = train(settings, raw, SPLIT, "with_distance")
    assert (pretrip.decision.alias, with_distance.decision.alias) == (PRETRIP_CHAMPION, CHAMPION)
    assert pretrip.decision.promoted
    assert with_distance.decision.promoted
    assert with_distance.decision.reason == "the first registered with_distance model"
    store = tracking.connect(settings)
    assert tracking.champion_version(store) == with_distance.decision.version
    assert tracking.champion_version(store, PRETRIP_CHAMPION) == pretrip.decision.version


def test_a_champion_judged_on_other_months_is_scored_again(first: tuple[Settings, Outcome]) -> None:
    settings, champion = first
    store = tracking.connect(settings)
    rescored: list[str] = []

    def rescore(uri: str) -> float:
        rescored.append(uri)
        return 1.0

    with_run = tracking.mlflow.start_run()
    decision = tracking.register(
        store, champion.model_uri, with_run.info.run_id, "pretrip", "other-month", 2.0, rescore
    )
    tracking.mlflow.end_run()
    assert rescored == [f"models:/taxi-duration/{champion.decision.version}"]
    assert not decision.promoted
    assert decision.champion_rmse == 1.0


def test_the_same_job_run_twice_ties_and_keeps_the_champion(
    raw: list[InputFile], first: tuple[Settings, Outcome]
) -> None:
    settings, champion = first
    again = train(settings, raw, SPLIT, "pretrip")
    assert again.overall("validate")["model"]["rmse"] == champion.overall("validate")["model"]["rmse"]
    assert not again.decision.promoted
    assert f"ties {PRETRIP_CHAMPION} v{champion.decision.version}" in again.decision.reason
    assert tracking.champion_version(tracking.connect(settings), PRETRIP_CHAMPION) == champion.decision.version


def test_long_steps_report_progress_within_them(raw: list[InputFile], tmp_path: Path) -> None:
    steps: list[str] = []
    seen: list[tuple[str, str, int, int]] = []
    train(
        store_settings(tmp_path),
        raw,
        SPLIT,
        "pretrip",
        on_step=steps.append,
        on_progress=lambda what, done, total: seen.append((steps[-1], what, done, total)),
    )
    rounds = [(done, total) for step, what, done, total in seen if (step, what) == ("train", "boosting rounds")]
    assert rounds == [(done, 100) for done in range(1, 101)]  # the quick search's 100 trees
    parts = [(done, total) for step, what, done, total in seen if (step, what) == ("evaluate", "parts scored")]
    assert parts == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_the_tuned_search_logs_a_nested_run_per_trial_and_registers_the_best_refit(
    raw: list[InputFile], tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = load_settings(data_dir=tmp_path, mlflow_tracking_uri=uri, search="tune", tune_trials=3)
    seen: list[tuple[str, int, int]] = []
    outcome = train(settings, raw, SPLIT, "with_distance", on_progress=lambda *progress: seen.append(progress))
    assert [p for p in seen if p[0] == "trials"] == [("trials", done, 3) for done in (1, 2, 3)]
    client = MlflowClient(uri)
    parent = client.get_run(outcome.run_id)
    study = json.loads(Path(client.download_artifacts(outcome.run_id, "search/study.json")).read_text())
    trials = study["history"]
    assert len(trials) == parent.data.metrics["tune_trials"] == 3
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{outcome.run_id}'")
    by_id = {c.info.run_id: c for c in children}
    assert sorted(by_id) == sorted(t["run_id"] for t in trials)  # one child per trial, nothing else
    for trial in trials:
        child = by_id[trial["run_id"]]
        assert child.data.metrics["validate_rmse"] == pytest.approx(trial["validate_rmse"])
        assert child.data.metrics["rounds"] == trial["rounds"]
        assert child.data.metrics["pruned"] == int(trial["pruned"])
        assert float(child.data.params["learning_rate"]) == pytest.approx(trial["params"]["learning_rate"])
        assert float(child.data.params["month_decay"]) == trial["month_decay"] == 1.0  # one training month
    best = trials[study["best_trial"]]
    assert float(parent.data.params["model.num_leaves"]) == best["params"]["num_leaves"]
    # The registered model is the best trial's parameters refit on both months, with 1.1x its rounds ...
    assert parent.data.params["model.n_estimators"] == str(round(1.1 * best["rounds"]))
    assert parent.data.params["model.month_decay"] == "1.0"
    assert outcome.params["num_leaves"] == best["params"]["num_leaves"]  # the outcome names what was chosen
    assert outcome.params["month_decay"] == 1.0
    assert outcome.trained_rows == outcome.rows["train"] + outcome.rows["validate"]
    # ... but the validation score (and the champion rule) is the model's before the refit: the trial's RMSE.
    assert parent.data.metrics["validate_model_rmse"] == pytest.approx(best["validate_rmse"], rel=1e-6)
    assert parent.data.metrics["tune_best_validate_rmse"] == best["validate_rmse"]
    assert outcome.decision.promoted
    assert {"test_model_rmse", "test_prerefit_model_rmse"} <= set(parent.data.metrics)


def test_a_tie_or_a_worse_model_never_moves_the_champion(tmp_path: Path) -> None:
    store = tracking.connect(store_settings(tmp_path))
    rmse = 5.17329951  # rounds up at 6 decimals: a rounded tag once made its own tie look like a win

    def rescore(uri: str) -> float:
        raise AssertionError(f"{uri} was judged on the same rows: its tag is enough")

    with tracking.mlflow.start_run() as run:
        uri = f"runs:/{run.info.run_id}/model"
        decisions = [
            tracking.register(store, uri, run.info.run_id, "with_distance", "same-rows", r, rescore)
            for r in (rmse, rmse, rmse * 1.001)
        ]
        better = tracking.register(store, uri, run.info.run_id, "with_distance", "same-rows", rmse * 0.999, rescore)
    assert [d.promoted for d in decisions] == [True, False, False]
    assert decisions[1].champion_rmse == rmse
    assert "does not beat champion v1" in decisions[2].reason
    assert better.promoted
    assert tracking.champion_version(store) == better.version


def test_runs_go_to_the_configured_experiment(tmp_path: Path) -> None:
    # Databricks names an experiment by its workspace path: the notebooks set one there.
    settings = store_settings(tmp_path, mlflow_experiment="/Shared/taxi-duration")
    store = tracking.connect(settings)
    assert store.client.get_experiment(store.experiment_id).name == "/Shared/taxi-duration"
    assert tracking.connect(settings).experiment_id == store.experiment_id  # found again, not made twice
    with tracking.mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == store.experiment_id


@pytest.mark.parametrize("point", ["train", "decide"])
def test_a_killed_training_leaves_no_broken_run_or_half_registered_model(
    raw: list[InputFile], tmp_path: Path, point: str
) -> None:
    settings = store_settings(tmp_path)
    env = {
        **os.environ,
        tracking.CRASH_ENV: point,
        "TAXI_DURATION_DATA_DIR": str(tmp_path),
        "MLFLOW_TRACKING_URI": str(settings.mlflow_tracking_uri),
        "TAXI_DURATION_SEARCH": "quick",
    }
    args = ["train", "--data", *(str(f.path) for f in raw)]
    killed = subprocess.run([sys.executable, "-m", "taxi_duration", *args], env=env, capture_output=True, timeout=300)
    assert killed.returncode == -9
    store = tracking.connect(settings)
    left = store.client.search_runs([store.experiment_id])
    assert [r.info.status for r in left] == ["RUNNING"]
    versions = store.client.search_model_versions("name = 'taxi-duration'")
    assert len(versions) == (1 if point == "decide" else 0)

    outcome = train(settings, raw, SPLIT, "with_distance")
    dead = store.client.get_run(left[0].info.run_id)
    assert dead.info.status == "FAILED"
    assert "killed" in dead.data.tags[tracking.OUTCOME_TAG]
    remaining = store.client.search_model_versions("name = 'taxi-duration'")
    assert [str(v.version) for v in remaining] == [outcome.decision.version]
    assert outcome.decision.promoted


def test_too_few_months_is_a_clear_error(raw: list[InputFile], tmp_path: Path) -> None:
    from taxi_duration.core.errors import UsageError

    with pytest.raises(UsageError, match="no input file for the test part"):
        train(store_settings(tmp_path), [f for f in raw if f.month != 202303], SPLIT, "pretrip")


@pytest.mark.spark
def test_spark_pipeline_end_to_end(raw: list[InputFile], spark_run: SparkRun) -> None:
    settings, outcome, searched = spark_run.settings, spark_run.outcome, spark_run.searched
    scores = outcome.overall("validate")
    assert outcome.engine == "spark"
    fitted = [(done, total) for what, done, total in searched if what == "candidates"]
    assert fitted == [(1, 2), (2, 2)]  # the quick search: linear and XGBoost
    assert outcome.chosen in ("linear", "xgboost", "ensemble")
    assert scores["model"]["rmse"] < 0.9 * scores["global_mean"]["rmse"]
    candidates = MlflowClient(settings.mlflow_tracking_uri).download_artifacts(outcome.run_id, "candidates.json")
    assert {c["name"] for c in json.loads(Path(candidates).read_text())["candidates"]} >= {"linear", "xgboost"}
    result = score_files(settings, outcome.model_uri, [f for f in raw if f.month == 202302])
    assert result["metrics"]["model"]["rmse"] == pytest.approx(scores["model"]["rmse"], rel=1e-6)


# The Spark jobs a training on `raw` (24,000 trips, the quick search) may start. A Spark job costs a tenth of
# a second to a second whatever its rows, so on small data their count is what the run's time is made of:
# 324 jobs before issue 35, 184 after its first steps (the same count as Spark's own event log of the run), 155
# once the parts were written with the store joined and the course baseline took one pass, 129 once each kind of
# part was featurized, joined and written once for the three roles, 109 once the three were validated in one job.
SMALL_TRAINING_JOBS = 120


@pytest.mark.spark
def test_a_small_spark_training_starts_few_spark_jobs(spark_run: SparkRun) -> None:
    assert 0 < spark_run.jobs <= SMALL_TRAINING_JOBS, f"{spark_run.jobs} Spark jobs (bound {SMALL_TRAINING_JOBS})"


@pytest.mark.spark
def test_the_spark_search_logs_which_candidates_ran_at_once(
    spark_run: SparkRun,
) -> None:
    settings, outcome, searched = spark_run.settings, spark_run.outcome, spark_run.searched
    client = MlflowClient(settings.mlflow_tracking_uri)
    parent = client.get_run(outcome.run_id)
    timeline = json.loads(Path(client.download_artifacts(outcome.run_id, "search/timeline.json")).read_text())
    spans = timeline["candidates"]
    assert timeline["parallelism"] == 2
    assert len(spans) == [total for what, _, total in searched if what == "candidates"][-1]
    overlapping = [
        (a["candidate"], b["candidate"])
        for a in spans
        for b in spans
        if a is not b and a["start_s"] <= b["start_s"] < a["end_s"]
    ]
    assert overlapping, spans
    assert parent.data.metrics["search_peak_concurrency"] == 2
    assert "plots/search_timeline.png" in {a.path for a in client.list_artifacts(outcome.run_id, "plots")}
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{outcome.run_id}'")
    by_id = {c.info.run_id: c for c in children}
    assert sorted(by_id) == sorted(s["run_id"] for s in spans)
    for span in spans:
        child = by_id[span["run_id"]]
        assert child.data.metrics["validate_rmse"] == pytest.approx(span["validate_rmse"])
        assert child.data.params["family"] == span["name"]
        assert child.info.end_time - child.info.start_time == pytest.approx(1000 * span["duration_s"], abs=2)
        assert child.data.tags["spark_job_group"] == span["spark_job_group"]
        assert span["spark_job_ids"], "each candidate's fit ran Spark jobs under its group"


def test_a_fit_that_lost_its_barrier_stage_is_started_again_and_nothing_else_is() -> None:
    from taxi_duration.train.spark_search import LOST_BARRIER, fit_retrying_barriers

    calls: list[int] = []

    def flaky(failures: int, message: str) -> Callable[[], str]:
        def fit() -> str:
            calls.append(1)
            if len(calls) <= failures:
                raise RuntimeError(f"Job aborted: {message}")
            return "model"

        return fit

    assert fit_retrying_barriers(flaky(2, f"{LOST_BARRIER} ResultStage"), retries=2) == "model"
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(RuntimeError, match=LOST_BARRIER):
        fit_retrying_barriers(flaky(3, f"{LOST_BARRIER} ResultStage"), retries=2)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(RuntimeError, match="out of memory"):
        fit_retrying_barriers(flaky(1, "out of memory"), retries=2)
    assert len(calls) == 1


def test_peak_concurrency_counts_overlaps_not_touching_ends() -> None:
    from taxi_duration.train.spark_search import peak_concurrency

    assert peak_concurrency([]) == 0
    assert peak_concurrency([(0, 1), (1, 2), (2, 3)]) == 1  # each starts as the one before ends
    assert peak_concurrency([(0, 4), (1, 2), (1.5, 3), (3.5, 5)]) == 3
