"""Measuring a command as a user would run it: wall time and the peak memory of its whole process tree.

Peak RSS is sampled (every `interval` seconds) over the process and all its descendants, so a JVM that
PySpark starts counts too; `resource.getrusage` would report only the largest single process.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Measurement:
    """One measured run of a command."""

    wall_s: float
    peak_rss_bytes: int
    returncode: int
    stderr_tail: str


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of `proc` and every descendant, in bytes (processes that vanish count 0)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total


def run_measured(
    cmd: list[str], *, interval: float = 0.05, timeout: float | None = None, cwd: Path | None = None
) -> Measurement:
    """Run `cmd` to completion, sampling its process tree's memory; stdout is discarded."""
    # stderr goes to a file, not a pipe: a chatty child (Spark's logs) must never block on a full pipe.
    with tempfile.TemporaryFile(mode="w+") as err:
        started = time.perf_counter()
        popen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, cwd=cwd)
        peak = _watch(popen, interval, None if timeout is None else started + timeout)
        wall = time.perf_counter() - started
        err.seek(0)
        return Measurement(wall, peak, popen.returncode, err.read()[-2000:])


def _watch(popen: subprocess.Popen[str], interval: float, deadline: float | None) -> int:
    proc = psutil.Process(popen.pid)
    peak = 0
    while popen.poll() is None:
        try:
            peak = max(peak, tree_rss(proc))
        except psutil.NoSuchProcess:
            break
        if deadline is not None and time.perf_counter() > deadline:
            for p in [*proc.children(recursive=True), proc]:
                p.kill()
            break
        time.sleep(interval)
    popen.wait()
    return peak
