"""The benchmark meter: peak memory counts every process of the tree."""

from __future__ import annotations

import sys

from taxi_duration.bench.measure import run_measured

ALLOCATE = "import time; b = bytearray({mb} * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.5)"


def test_peak_memory_sees_an_allocation() -> None:
    m = run_measured([sys.executable, "-c", ALLOCATE.format(mb=300)], interval=0.02)
    assert m.returncode == 0
    assert 300 * 2**20 < m.peak_rss_bytes < 600 * 2**20
    assert m.wall_s >= 0.5


def test_peak_memory_includes_grandchildren() -> None:
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {ALLOCATE.format(mb=300)!r}])"
    m = run_measured([sys.executable, "-c", child], interval=0.02)
    assert m.peak_rss_bytes > 300 * 2**20


def test_failure_keeps_the_exit_code_and_the_end_of_stderr() -> None:
    m = run_measured([sys.executable, "-c", "import sys; sys.exit('boom')"])
    assert (m.returncode, m.stderr_tail.strip()) == (1, "boom")
