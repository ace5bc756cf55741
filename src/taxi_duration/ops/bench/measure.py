"""Measuring a command as a user would run it: wall time, CPU time and the peak memory of its process tree.

Peak RSS and CPU time (user+sys) are sampled (every `interval` seconds) over the process and all its
descendants, so a JVM that PySpark starts counts too; `resource.getrusage` would report only the largest
single process, and never a grandchild its parent did not wait for (the JVM is such a grandchild).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from taxi_duration.core.errors import UsageError


@dataclass(frozen=True)
class Measurement:
    """One measured run of a command."""

    wall_s: float
    peak_rss_bytes: int
    cpu_s: float
    returncode: int
    stderr_tail: str
    # The descendants of `run_measured`'s `beside` processes (a cluster's executors and their Python workers):
    # their CPU seconds, and the peak resident memory of the largest one's tree.
    beside_cpu_s: float = 0.0
    beside_peak_rss_bytes: int = 0


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of `proc` and every descendant, in bytes (processes that vanish count 0)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total


@contextlib.contextmanager
def sampling_rss(interval: float = 0.05) -> Iterator[Callable[[], int]]:
    """Sample the resident memory of this process and its descendants (a local Spark JVM) while the block
    runs, for work measured in process (a notebook's); yields a function that returns the peak so far."""
    proc = psutil.Process()
    peak = [tree_rss(proc)]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(interval):
            peak[0] = max(peak[0], tree_rss(proc))

    thread = threading.Thread(target=watch, name="sampling-rss", daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        done.set()
        thread.join()
        peak[0] = max(peak[0], tree_rss(proc))  # the memory still held as the block ends


def run_measured(
    cmd: list[str],
    *,
    interval: float = 0.05,
    timeout: float | None = None,
    cwd: Path | None = None,
    memory_limit: int | None = None,
    beside: Sequence[int] = (),
) -> Measurement:
    """Run `cmd` to completion, sampling its process tree's memory; stdout is discarded.

    With `memory_limit` (bytes) the whole tree runs in a memory cgroup capped there, as a container
    would be: past it the kernel kills the process, which then reports a failure. The descendants of the
    `beside` pids (a standalone cluster's workers, which start the job's executors) are sampled too, apart.
    """
    # stderr goes to a file, not a pipe: a chatty child (Spark's logs) must never block on a full pipe.
    with tempfile.TemporaryFile(mode="w+") as err, _memory_cgroup(memory_limit) as join:
        started = time.perf_counter()
        popen = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            cwd=cwd,
            preexec_fn=join,
        )
        watched = _watch(popen, interval, None if timeout is None else started + timeout, beside)
        wall = time.perf_counter() - started
        err.seek(0)
        return Measurement(wall, watched.peak, watched.cpu, popen.returncode, err.read()[-2000:], *watched.beside)


@dataclass
class _Watched:
    peak: int = 0
    cpu: float = 0.0
    beside: tuple[float, int] = (0.0, 0)


def _watch(popen: subprocess.Popen[str], interval: float, deadline: float | None, beside: Sequence[int]) -> _Watched:
    """Peak tree RSS and total CPU seconds; each process's CPU is its last sample (short by < `interval`)."""
    proc = psutil.Process(popen.pid)
    others = [psutil.Process(pid) for pid in beside]
    peak = beside_peak = 0
    cpu: dict[int, float] = {}
    beside_cpu: dict[int, float] = {}
    while popen.poll() is None:
        try:
            peak = max(peak, tree_rss(proc))
        except psutil.NoSuchProcess:
            break
        _sample_cpu([proc, *proc.children(recursive=True)], cpu)
        for other in others:
            with contextlib.suppress(psutil.NoSuchProcess):
                children = other.children()
                _sample_cpu([p for child in children for p in [child, *child.children(recursive=True)]], beside_cpu)
                beside_peak = max(beside_peak, *(tree_rss(child) for child in children), 0)
        if deadline is not None and time.perf_counter() > deadline:
            for p in [*proc.children(recursive=True), proc]:
                p.kill()
            break
        time.sleep(interval)
    popen.wait()
    return _Watched(peak, sum(cpu.values()), (sum(beside_cpu.values()), beside_peak))


def _sample_cpu(processes: list[psutil.Process], into: dict[int, float]) -> None:
    for p in processes:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = p.cpu_times()
            into[p.pid] = times.user + times.system


CGROUP_V1 = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup")


@contextlib.contextmanager
def _memory_cgroup(limit: int | None) -> Iterator[Callable[[], None] | None]:
    """A fresh memory cgroup capped at `limit` bytes; yields the function a child calls to join it."""
    if limit is None:
        yield None
        return
    if (CGROUP_V2 / "cgroup.controllers").is_file():
        group, limit_file = CGROUP_V2 / f"taxi-duration-{uuid.uuid4().hex[:8]}", "memory.max"
    elif CGROUP_V1.is_dir():
        group, limit_file = CGROUP_V1 / f"taxi-duration-{uuid.uuid4().hex[:8]}", "memory.limit_in_bytes"
    else:
        raise UsageError("a memory limit needs Linux memory cgroups (run as root, or in a container with --memory)")
    try:
        group.mkdir()
        (group / limit_file).write_text(str(limit))
    except OSError as exc:
        raise UsageError(f"cannot create a memory cgroup under {group.parent} ({exc}): run as root") from exc
    procs = str(group / "cgroup.procs")

    def join() -> None:
        with open(procs, "w") as fh:
            fh.write(str(os.getpid()))

    try:
        yield join
    finally:
        with contextlib.suppress(OSError):
            group.rmdir()


def parse_bytes(text: str) -> int:
    """`4GiB`, `512MiB`, `2GB`, `1000000` -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise UsageError(f"not a size: {text!r} (expected e.g. 4GiB, 512MiB)")
    number, unit, binary = float(match[1]), match[2].upper(), match[3]
    base = 1024 if binary or not unit else 1000
    return int(number * base ** " KMGT".index(unit or " "))
