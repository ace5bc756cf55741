"""The CPU time of this process and the processes it started (a local Spark JVM, its Python workers)."""

from __future__ import annotations

import contextlib

import psutil


def tree_cpu(proc: psutil.Process | None = None) -> float:
    """CPU seconds (user+sys) used so far by `proc` (default: this process) and its living descendants."""
    proc = proc or psutil.Process()
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            times = p.cpu_times()
            total += times.user + times.system
    return total
