"""A real standalone cluster (a master and two one-core workers, each its own JVM, started as a user starts
them): the commands run on it as processes give local mode's counts and metrics, survive an executor killed
mid-task, and never leave a half-written output; and what cannot work fails in one line, in bounded time."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

from taxi_duration.core.atomic import run_tag
from taxi_duration.core.errors import EngineUnavailableError, UsageError
from taxi_duration.core.months import parse_months
from taxi_duration.engines.frames import Runtime
from taxi_duration.engines.spark import check_master
from taxi_duration.ingest.inputs import InputFile, check_all, discover
from taxi_duration.ingest.quality import CLEAN_DIR, QUARANTINE_DIR, REPORT_JSON
from taxi_duration.ingest.quality import validate as run_validation
from taxi_duration.ingest.synth import generate
from taxi_duration.monitor.scorecard import score_files
from taxi_duration.ops import cluster
from taxi_duration.ops.cluster import Cluster
from taxi_duration.train.job import outcome_json
from tests.conftest import Holding, SparkRun, store_settings

JOB_TIMEOUT_S = 900  # a whole job on two shared cores; every wait below is bounded
# What an executor logs of a task: started, and how it ended.
TASK = re.compile(r"(Running|Finished|Exception in|killed) task \S+ in stage \S+ \(TID (\d+)\)")


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "taxi_duration", *map(str, args)]


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "TAXI_DURATION_SEARCH": "quick", **extra}


def run(*args: str | Path, timeout: float = JOB_TIMEOUT_S, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, env=environment(**extra), timeout=timeout, check=False
    )


def one_line(stderr: str) -> str:
    """The error line of a command's stderr (Spark's JVM may print its own start-up banner before it)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def store(data_dir: Path) -> dict[str, str]:
    """The environment that gives a command the settings `store_settings(data_dir)` gives a test."""
    uri = store_settings(data_dir).mlflow_tracking_uri
    return {"TAXI_DURATION_DATA_DIR": str(data_dir), "TAXI_DURATION_MLFLOW_TRACKING_URI": str(uri)}


@pytest.fixture(scope="module")
def trips(tmp_path_factory: pytest.TempPathFactory) -> list[InputFile]:
    """Three small months: the split's train, validate and test parts."""
    root = tmp_path_factory.mktemp("trips")
    generate(6_000, parse_months("2023-01..2023-03"), root, seed=5)
    return check_all(discover([root]))


# Killing an executor in the middle of a task.


def executor_under(worker: str) -> psutil.Process | None:
    """The executor JVM a worker (run tag) runs, if any."""
    for child in psutil.Process(int(worker.partition("-")[0])).children(recursive=True):
        try:
            if "org.apache.spark.executor.CoarseGrainedExecutorBackend" in child.cmdline():
                return child
        except psutil.NoSuchProcess:
            continue
    return None


def in_flight(log: Path) -> set[str]:
    """Task ids an executor's log shows started and not ended."""
    started, ended = set(), set()
    for verb, tid in TASK.findall(log.read_text(errors="replace")):
        (started if verb == "Running" else ended).add(tid)
    return started - ended


def kill_executor_mid_task(
    job: subprocess.Popen[str], worker: str, ready: Callable[[], bool] = lambda: True, attempts: int = 3
) -> set[str]:
    """SIGKILL the executor under `worker` while its log shows a task running (once `ready()`); again, on the
    executor the worker starts next, if the task had ended before the signal landed. Returns the task ids
    the killed executor never finished: proof that the kill hit a running task."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        assert job.poll() is None, "the job ended before any task could be killed"
        executor = executor_under(worker)
        log = Path(executor.cwd()) / "stderr" if executor is not None else None
        if executor is not None and log is not None and log.exists() and ready() and in_flight(log):
            executor.kill()
            executor.wait(30)
            cut = in_flight(log)  # the log can no longer change
            attempts -= 1
            if cut or attempts == 0:
                return cut
        time.sleep(0.02)
    raise AssertionError("no task was seen running on the executor in time")


def rows(folder: Path) -> list[tuple[Any, ...]]:
    """Every row of a Parquet folder, sorted: equal lists mean no row lost and none written twice."""
    table = pq.read_table(folder)
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))  # type: ignore[arg-type]


def flat(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested document as {"a/b/c": value}, for pytest.approx."""
    out: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def counts(report: Path) -> dict[str, Any]:
    """A report without its timings, input files named as local paths (Spark names them file:/...)."""
    document = json.loads(report.read_text())
    for f in document.get("files", []):
        f["path"] = local_name(f["path"])
    return {k: v for k, v in document.items() if k not in ("elapsed_s", "created_at", "engine")}


def local_name(path: str) -> str:
    """A path as the local filesystem names it: Hadoop qualifies a local file as file:/x."""
    return path.removeprefix("file:")


# The cluster commands.


def test_status_prints_the_master_and_its_alive_workers(spark_cluster: Cluster) -> None:
    data_dir = Path(spark_cluster.state_dir).parent
    result = run("cluster", "status", TAXI_DURATION_DATA_DIR=str(data_dir), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == spark_cluster.master_url
    assert "2 of 2 worker(s) alive" in result.stderr


def test_up_refuses_a_second_cluster_in_the_same_state_folder(spark_cluster: Cluster) -> None:
    with pytest.raises(UsageError, match="a cluster is up at spark://"):
        cluster.up(Path(spark_cluster.state_dir))


@pytest.mark.cluster
@pytest.mark.e2e
def test_a_worker_that_cannot_start_fails_up_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    started = time.monotonic()
    up = ("cluster", "up", "--workers", "1", "--memory-per-worker", "0m")
    result = run(*up, TAXI_DURATION_DATA_DIR=str(tmp_path), timeout=300)
    assert result.returncode == 1
    assert one_line(result.stderr).startswith("error: worker-1 exited while starting:")
    assert time.monotonic() - started < 300
    assert cluster.status(tmp_path / "cluster") is None
    assert not [p for p in psutil.process_iter() if str(tmp_path) in " ".join(_cmdline(p))]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def test_up_refuses_sizes_that_make_no_sense(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="512m or 2g"):
        cluster.up(tmp_path, memory_per_worker="2 GB")
    with pytest.raises(UsageError, match="at least one worker"):
        cluster.up(tmp_path, workers=0)
    assert cluster.status(tmp_path) is None


def test_stopping_processes_ends_their_children_too() -> None:
    parent = Holding("import subprocess, sys; child = subprocess.Popen(['sleep', '600']); print(child.pid)")
    child = int(parent.said)
    cluster.stop_processes([run_tag(parent.process.pid)])
    assert parent.process.wait(10) is not None
    parent.close()
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


# Bad input: bounded, one line.


def test_a_master_nothing_listens_on_is_refused_at_once() -> None:
    with pytest.raises(EngineUnavailableError, match=r"no Spark master at spark://127\.0\.0\.1:\d+"):
        check_master(f"spark://127.0.0.1:{free_port()}")


@pytest.mark.cluster
@pytest.mark.e2e
def test_a_command_on_a_master_nothing_listens_on_exits_in_one_line(trips: list[InputFile], tmp_path: Path) -> None:
    master = f"spark://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run("validate", trips[0].path, "--out", tmp_path / "v", "--engine", "spark", "--spark-master", master)
    assert result.returncode == 1
    assert one_line(result.stderr).startswith(f"error: no Spark master at {master}")
    assert time.monotonic() - started < 60  # a refused connection is immediate; Python and Java start-up
    assert not (tmp_path / "v").exists()


def test_a_job_no_worker_can_host_fails_in_one_line_after_the_wait(
    spark_cluster: Cluster, trips: list[InputFile], tmp_path: Path
) -> None:
    started = time.monotonic()
    result = run(
        *("validate", trips[0].path, "--out", tmp_path / "v", "--engine", "spark"),
        *("--spark-master", spark_cluster.master_url),
        TAXI_DURATION_SPARK_EXECUTOR_WAIT_SECONDS="5",
        PYSPARK_SUBMIT_ARGS="--conf spark.executor.cores=2 pyspark-shell",  # the workers have one core each
        timeout=300,
    )
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert line.startswith(f"error: no executor started on {spark_cluster.master_url} within 5 s"), line
    assert "2 core(s)" in line
    assert time.monotonic() - started < 300
    assert not (tmp_path / "v").exists()


# Jobs on the cluster: the same results as local mode, and faults.


def test_validate_on_the_cluster_survives_a_killed_executor_with_local_modes_outputs(
    spark_cluster: Cluster, trips: list[InputFile], tmp_path: Path, spark: Any
) -> None:
    local = tmp_path / "local"
    runtime = Runtime.open(store_settings(tmp_path, engine="spark", spark_master="local[2]"))
    run_validation(runtime, trips, local)

    out = tmp_path / "cluster"
    args = ("validate", *(f.path for f in trips), "--out", out, "--engine", "spark")
    job = subprocess.Popen(
        command(*args, "--spark-master", spark_cluster.master_url),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cut = kill_executor_mid_task(job, spark_cluster.workers[0])
        _, stderr = job.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        job.kill()
    assert cut, "the executor was killed between tasks: nothing was retried"
    assert job.returncode == 0, stderr
    assert counts(out / REPORT_JSON) == counts(local / REPORT_JSON)
    for part in (CLEAN_DIR, QUARANTINE_DIR):
        assert rows(out / part) == rows(local / part)


def test_a_killed_driver_leaves_the_output_untouched_and_frees_the_cluster(
    spark_cluster: Cluster, trips: list[InputFile], tmp_path: Path
) -> None:
    out = tmp_path / "v"
    args = ("validate", *(f.path for f in trips), "--out", out, "--engine", "spark")
    job = subprocess.Popen(
        command(*args, "--spark-master", spark_cluster.master_url), env=environment(), stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while not [p for p in out.parent.glob(f".{out.name}.tmp-*/*") if p.is_dir()]:  # parts being written
            assert job.poll() is None, "the job ended before it wrote anything"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        job.send_signal(signal.SIGKILL)
        assert job.wait(30) == -signal.SIGKILL
    finally:
        job.kill()
    assert not out.exists()
    deadline = time.monotonic() + 120
    while any(executor_under(worker) for worker in spark_cluster.workers):  # the master ends the app's executors
        assert time.monotonic() < deadline, "executors of a dead driver are still running"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster_training(
    spark_cluster: Cluster, raw: list[InputFile], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path]:
    """`train --engine spark` on the cluster, on the months the local `spark_run` trained on, with an executor
    killed mid-task while it reads and featurizes the data: its --out JSON, and the data dir of its store."""
    data_dir = tmp_path_factory.mktemp("cluster-store")
    out, log = data_dir / "outcome.json", data_dir / "train.log"
    args = ("train", "--data", *(f.path for f in raw), "--engine", "spark", "--search", "quick", "--out", out)
    with log.open("w") as stderr:
        job = subprocess.Popen(
            command(*args, "--spark-master", spark_cluster.master_url),
            env=environment(**store(data_dir)),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
        try:
            # Before XGBoost's fit starts (it logs it): a barrier stage, which Spark does not retry when one of
            # its tasks is lost (docs/cluster.md), so there the job fails.
            cut = kill_executor_mid_task(job, spark_cluster.workers[0], lambda: "_fit Running" not in log.read_text())
            job.wait(JOB_TIMEOUT_S)
        finally:
            job.kill()
    assert cut, "the executor was killed between tasks: nothing was retried"
    assert job.returncode == 0, log.read_text()[-3000:]
    return json.loads(out.read_text()), data_dir


def test_train_on_the_cluster_survives_a_killed_executor_with_local_modes_metrics(
    cluster_training: tuple[dict[str, Any], Path], spark_run: SparkRun
) -> None:
    outcome, _ = cluster_training
    local = outcome_json(spark_run.outcome)
    assert (outcome["engine"], outcome["model"], outcome["rows"]) == (local["engine"], local["model"], local["rows"])
    assert flat(outcome["scores"]) == pytest.approx(flat(local["scores"]), rel=1e-6, nan_ok=True)  # r2 of one row


def test_evaluate_on_the_cluster_gives_local_modes_metrics(
    cluster_training: tuple[dict[str, Any], Path], spark_cluster: Cluster, raw: list[InputFile], spark: Any
) -> None:
    outcome, data_dir = cluster_training
    month = next(f for f in raw if f.month == 202302)
    out = data_dir / "evaluate.json"
    result = run(
        *("evaluate", "--model", outcome["model_uri"], "--data", month.path, "--engine", "spark", "--out", out),
        *("--spark-master", spark_cluster.master_url),
        **store(data_dir),
    )
    assert result.returncode == 0, result.stderr
    on_cluster = json.loads(out.read_text())
    settings = store_settings(data_dir, engine="spark", spark_master="local[2]")
    local = score_files(settings, outcome["model_uri"], [month])
    assert {**on_cluster["data"], "files": [local_name(f) for f in on_cluster["data"]["files"]]} == local["data"]
    assert flat(on_cluster["metrics"]) == pytest.approx(flat(local["metrics"]), rel=1e-6, nan_ok=True)
    logged = outcome["scores"]["validate"]["model"]["overall"]["all"]["rmse"]
    assert on_cluster["metrics"]["model"]["rmse"] == pytest.approx(logged, rel=1e-6)
