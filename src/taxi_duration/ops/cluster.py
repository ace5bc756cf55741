"""A Spark standalone cluster on this machine: `up`, `status` and `down`.

`up` starts a master and N workers from the pip-installed PySpark (`pyspark/bin/spark-class`, since the wheel
has no `sbin/start-*.sh`), each its own JVM with its own cores and memory, on loopback. Their pids (with start
times, so a reused pid is never taken for them), ports and logs live in a state folder under the data dir,
where `status` and `down` find them. `down` ends every process of the cluster, executors and their Python
workers included, and checks that none is left.

The checks a session makes on any `spark://` master (something accepts connections there, an executor
registers within a bounded time) are the session's own, in `engines/spark.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.request import urlopen

import psutil

from taxi_duration.core.atomic import atomic_file, run_tag, tag_is_gone
from taxi_duration.core.errors import EngineUnavailableError, UsageError
from taxi_duration.engines.spark import CONNECT_TIMEOUT_S, check_java

HOST = "127.0.0.1"
STATE_FILE = "cluster.json"
# Heap of the master and worker daemons themselves (executors get the memory a worker offers).
DAEMON_MEMORY = "512m"
STOP_WAIT_S = 15.0  # after SIGTERM, before SIGKILL
MEMORY = re.compile(r"^\d+[kmgt]$", re.IGNORECASE)


@dataclass(frozen=True)
class Cluster:
    """A cluster started by `up`: where it listens and which processes are its own."""

    master_url: str
    ui_url: str
    master: str  # run tag (pid-start time) of the master JVM
    workers: list[str]  # run tags of the worker JVMs
    cores_per_worker: int
    memory_per_worker: str
    state_dir: str

    def processes(self) -> list[str]:
        """Run tags of the daemons: the workers first (they end their executors), then the master."""
        return [*self.workers, self.master]

    def alive(self) -> list[str]:
        """Run tags of the daemons still running."""
        return [tag for tag in self.processes() if not _gone(tag)]


def up(
    state_dir: Path,
    workers: int = 2,
    cores_per_worker: int = 1,
    memory_per_worker: str = "2g",
    timeout_s: float = 120.0,
    on_step: Callable[[str], None] = lambda step: None,
) -> Cluster:
    """Start a master and `workers` workers and return once every worker has registered with the master.

    Raises:
        UsageError: a cluster of this state folder is still up, or the sizes make no sense.
        EngineUnavailableError: no Java for Spark, or a daemon exited or did not register within `timeout_s`
            (what was started is stopped again).
    """
    if workers < 1 or cores_per_worker < 1:
        raise UsageError("a cluster needs at least one worker with at least one core")
    if not MEMORY.match(memory_per_worker):
        raise UsageError(f"memory per worker {memory_per_worker!r}: a number and a unit, e.g. 512m or 2g")
    running = status(state_dir)
    if running is not None:
        raise UsageError(f"a cluster is up at {running.master_url}: `taxi-duration cluster down` first")
    check_java()
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    port, ui_port = _free_port(), _free_port()
    ui_url = f"http://{HOST}:{ui_port}"
    cluster = Cluster(f"spark://{HOST}:{port}", ui_url, "", [], cores_per_worker, memory_per_worker, str(state_dir))
    started: list[str] = []
    try:
        on_step("starting the master")
        cluster = _start_master(cluster, port, ui_port, started)
        deadline = time.monotonic() + timeout_s
        _wait(lambda: _master_state(ui_url) is not None, deadline, cluster, "the master to answer")
        for n in range(1, workers + 1):
            on_step(f"starting worker {n} of {workers}")
            cluster = _start_worker(cluster, n, started)
        on_step(f"waiting for {workers} worker(s) to register")
        _wait(lambda: len(alive_workers(ui_url)) >= workers, deadline, cluster, f"{workers} worker(s) to register")
    except BaseException:
        stop_processes(started)
        _state_file(state_dir).unlink(missing_ok=True)
        raise
    return cluster


def _start_master(cluster: Cluster, port: int, ui_port: int, started: list[str]) -> Cluster:
    """Start the master JVM (its tag added to `started`); the cluster with it, saved."""
    master = _daemon(
        "master",
        ["org.apache.spark.deploy.master.Master", "--host", HOST, "--port", str(port)],
        ["--webui-port", str(ui_port)],
        Path(cluster.state_dir),
    )
    started.append(master)
    cluster = replace(cluster, master=master)
    _save(cluster)  # from here on, `down` finds what was started even if this process dies
    return cluster


def _start_worker(cluster: Cluster, n: int, started: list[str]) -> Cluster:
    """Start worker `n` on the cluster's master (its tag added to `started`); the cluster with it, saved."""
    state_dir = Path(cluster.state_dir)
    args = ["--cores", str(cluster.cores_per_worker), "--memory", cluster.memory_per_worker]
    args += ["--work-dir", str(state_dir / f"worker-{n}"), cluster.master_url]
    tag = _daemon(
        f"worker-{n}",
        ["org.apache.spark.deploy.worker.Worker", "--host", HOST],
        ["--webui-port", str(_free_port()), *args],
        state_dir,
    )
    started.append(tag)
    cluster = replace(cluster, workers=[*cluster.workers, tag])
    _save(cluster)
    return cluster


def status(state_dir: Path) -> Cluster | None:
    """The cluster of this state folder if any of its daemons is running, else None."""
    path = _state_file(state_dir)
    if not path.is_file():
        return None
    cluster = Cluster(**json.loads(path.read_text()))
    return cluster if cluster.alive() else None


def down(state_dir: Path) -> Cluster | None:
    """Stop the cluster of this state folder, every process under its daemons included; the one stopped, or
    None when none was up.

    Raises:
        EngineUnavailableError: a process outlived SIGKILL (never expected: the message names it).
    """
    path = _state_file(state_dir)
    if not path.is_file():
        return None
    cluster = Cluster(**json.loads(path.read_text()))
    stop_processes(cluster.processes())
    path.unlink()
    return cluster


def alive_workers(ui_url: str) -> list[dict[str, Any]]:
    """The workers the master lists as alive (empty when the master does not answer)."""
    state = _master_state(ui_url)
    return [w for w in (state or {}).get("workers", []) if w.get("state") == "ALIVE"]


def stop_processes(tags: list[str]) -> None:
    """SIGTERM each process named by a run tag and every process under it, SIGKILL those still there after
    `STOP_WAIT_S`, and check that none is left."""
    procs: list[psutil.Process] = []
    for tag in tags:
        if tag_is_gone(tag):
            continue
        try:
            parent = psutil.Process(int(tag.partition("-")[0]))
            procs += [parent, *parent.children(recursive=True)]  # executors, their Python workers
        except psutil.NoSuchProcess:
            continue
    for proc in procs:
        _signal(proc, psutil.Process.terminate)
    _, left = psutil.wait_procs(procs, timeout=STOP_WAIT_S)
    for proc in left:
        _signal(proc, psutil.Process.kill)
    _, stuck = psutil.wait_procs(left, timeout=STOP_WAIT_S)
    if stuck:
        raise EngineUnavailableError(f"process(es) {', '.join(str(p.pid) for p in stuck)} outlived SIGKILL")


def _daemon(name: str, command: list[str], options: list[str], state_dir: Path) -> str:
    """Start one Spark daemon in its own session (it outlives this process), logging to logs/<name>.log."""
    import pyspark

    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_SUBMIT_ARGS")}
    # Executors see the installed packages and what the driver ships them, not this shell's PYTHONPATH: as on
    # a real cluster, whose machines never had the driver's source folder.
    env.update(
        SPARK_LOCAL_IP=HOST,
        SPARK_DAEMON_MEMORY=DAEMON_MEMORY,
        SPARK_LOCAL_DIRS=str(state_dir / "local"),
        SPARK_LOG_DIR=str(state_dir / "logs"),
    )
    log = state_dir / "logs" / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(spark_class), *command, *options],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C or hang-up of this terminal does not reach the cluster
        )
    return run_tag(process.pid)


def _wait(ready: Callable[[], bool], deadline: float, cluster: Cluster, what: str) -> None:
    while not ready():
        for tag in cluster.processes():
            if _gone(tag):
                name = _name(cluster, tag)
                raise EngineUnavailableError(f"{name} exited while starting: {_last_error(cluster, tag)}")
        if time.monotonic() > deadline:
            raise EngineUnavailableError(f"timed out waiting for {what}: see the logs in {cluster.state_dir}/logs")
        time.sleep(0.25)


def _gone(tag: str) -> bool:
    """Whether a daemon has ended: exited, or exited and not yet reaped (a zombie child of `up`)."""
    if tag_is_gone(tag):
        return True
    try:
        return bool(psutil.Process(int(tag.partition("-")[0])).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _name(cluster: Cluster, tag: str) -> str:
    return "master" if tag == cluster.master else f"worker-{cluster.workers.index(tag) + 1}"


def _last_error(cluster: Cluster, tag: str) -> str:
    """The last error line of a daemon's log (or its last line), and where the log is."""
    log = Path(cluster.state_dir) / "logs" / f"{_name(cluster, tag)}.log"
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Exception" in line]
    return f"{(errors or lines or ['(no output)'])[-1]} (log: {log})"


def _master_state(ui_url: str) -> dict[str, Any] | None:
    try:
        with urlopen(f"{ui_url}/json/", timeout=CONNECT_TIMEOUT_S) as response:
            state: dict[str, Any] = json.load(response)
            return state
    except (URLError, OSError, ValueError):
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _signal(proc: psutil.Process, send: Callable[[psutil.Process], None]) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):  # it ended meanwhile
        send(proc)


def _state_file(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def _save(cluster: Cluster) -> None:
    with atomic_file(_state_file(Path(cluster.state_dir))) as tmp:
        tmp.write_text(json.dumps(asdict(cluster), indent=2) + "\n")
