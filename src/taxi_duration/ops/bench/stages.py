"""What Spark did, stage by stage, from its event log: wall time, tasks, CPU, input and shuffle bytes; and the
peak memory of each executor.

The event log, not the REST API, because a benchmarked job's driver has exited by the time it is read, and
because it is the same file a history server shows. Spark 4 writes it compressed and rolling by default;
`EVENT_LOG_CONF` asks for one plain JSON-lines file per application, which a script can read as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from taxi_duration.engines.frames import STEP_PROPERTY

EVENT_LOG_CONF = {
    "spark.eventLog.enabled": "true",
    "spark.eventLog.compress": "false",
    "spark.eventLog.rolling.enabled": "false",
    # Each executor's peak memory per stage, its whole process tree (the JVM and its Python workers) from procfs.
    "spark.eventLog.logStageExecutorMetrics": "true",
    "spark.executor.processTreeMetrics.enabled": "true",
}
# The process tree's resident memory, as Spark splits it.
TREE_RSS = ("ProcessTreeJVMRSSMemory", "ProcessTreePythonRSSMemory", "ProcessTreeOtherRSSMemory")


def event_log_submit_args(folder: Path) -> str:
    """`PYSPARK_SUBMIT_ARGS` that make any PySpark process started with it log its events into `folder`."""
    conf = {**EVENT_LOG_CONF, "spark.eventLog.dir": folder.resolve().as_uri()}
    return " ".join(f"--conf {key}={value}" for key, value in conf.items()) + " pyspark-shell"


@dataclass(frozen=True)
class Stage:
    """One completed stage attempt."""

    stage: int
    attempt: int
    name: str
    tasks: int
    wall_s: float
    task_run_s: float
    task_cpu_s: float
    input_bytes: int
    shuffle_read_bytes: int
    shuffle_write_bytes: int
    spill_bytes: int
    job: int = -1  # the Spark job that ran it
    step: str = ""  # the step of the training job it belongs to (`Runtime.mark_step`), if any


def _metric(accumulables: list[dict], *names: str) -> int:
    wanted = {f"internal.metrics.{n}" for n in names}
    return sum(int(a.get("Value") or 0) for a in accumulables if a.get("Name") in wanted)


def stages(lines: Iterable[str]) -> list[Stage]:
    """Every completed stage attempt of one event log, in completion order."""
    out = []
    job_of: dict[int, tuple[int, str]] = {}  # stage -> (its first job, that job's step)
    for line in lines:
        event = json.loads(line)
        if event.get("Event") == "SparkListenerJobStart":
            step = (event.get("Properties") or {}).get(STEP_PROPERTY) or ""
            for stage in event.get("Stage IDs", []):
                job_of.setdefault(stage, (event["Job ID"], step))
        if event.get("Event") != "SparkListenerStageCompleted":
            continue
        info = event["Stage Info"]
        job, step = job_of.get(info["Stage ID"], (-1, ""))
        acc = info.get("Accumulables", [])
        out.append(
            Stage(
                stage=info["Stage ID"],
                attempt=info["Stage Attempt ID"],
                name=info["Stage Name"].split(" at ")[0],
                tasks=info["Number of Tasks"],
                wall_s=(info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1000,
                task_run_s=_metric(acc, "executorRunTime") / 1000,
                task_cpu_s=_metric(acc, "executorCpuTime") / 1e9,
                input_bytes=_metric(acc, "input.bytesRead"),
                shuffle_read_bytes=_metric(acc, "shuffle.read.localBytesRead", "shuffle.read.remoteBytesRead"),
                shuffle_write_bytes=_metric(acc, "shuffle.write.bytesWritten"),
                spill_bytes=_metric(acc, "diskBytesSpilled"),
                job=job,
                step=step,
            )
        )
    return out


def executor_peaks(lines: Iterable[str]) -> dict[str, dict[str, int]]:
    """Each executor's peak memory over the application, in bytes: `rss` of its process tree (the JVM and the
    Python workers it started) and `heap` of its JVM. Only with `EVENT_LOG_CONF`'s stage executor metrics."""
    peaks: dict[str, dict[str, int]] = {}
    for line in lines:
        event = json.loads(line)
        if event.get("Event") != "SparkListenerStageExecutorMetrics" or event["Executor ID"] == "driver":
            continue
        metrics = event["Executor Metrics"]
        peak = peaks.setdefault(event["Executor ID"], {"rss": 0, "heap": 0})
        peak["rss"] = max(peak["rss"], sum(max(int(metrics.get(name, 0)), 0) for name in TREE_RSS))
        peak["heap"] = max(peak["heap"], int(metrics.get("JVMHeapMemory", 0)))
    return peaks


def read(folder: Path) -> list[Stage]:
    """The stages of the one application whose event log is in `folder`."""
    with _log(folder).open() as f:
        return stages(f)


def read_executor_peaks(folder: Path) -> dict[str, dict[str, int]]:
    """`executor_peaks` of the one application whose event log is in `folder`."""
    with _log(folder).open() as f:
        return executor_peaks(f)


def _log(folder: Path) -> Path:
    logs = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if len(logs) != 1:
        raise ValueError(f"expected one event log in {folder}, found {len(logs)}")
    return logs[0]


def totals(found: list[Stage]) -> dict[str, float]:
    """The whole application: jobs, stages, tasks, task time and bytes moved."""
    rows = [asdict(s) for s in found]
    keys = ["tasks", "task_run_s", "task_cpu_s", "input_bytes", "shuffle_read_bytes", "shuffle_write_bytes"]
    jobs = len({s.job for s in found})
    return {"jobs": jobs, "stages": len(rows), **{k: sum(r[k] for r in rows) for k in [*keys, "spill_bytes"]}}


def by_step(found: list[Stage]) -> dict[str, dict[str, float]]:
    """`totals` of each step of a training job (stages of no step under "")."""
    steps = dict.fromkeys(s.step for s in found)
    return {step: totals([s for s in found if s.step == step]) for step in steps}
