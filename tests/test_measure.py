"""The benchmark meter: peak memory counts every process of the tree."""

from __future__ import annotations

import subprocess
import sys

import pytest

from taxi_duration.core.errors import UsageError
from taxi_duration.ops.bench.measure import parse_bytes, run_measured, sampling_rss

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


def test_cpu_time_counts_a_grandchilds_busy_loop_not_its_sleep() -> None:
    spin = "import time; t = time.process_time(); time.sleep(0.3)\nwhile time.process_time() - t < 0.6: pass"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {spin!r}])"
    m = run_measured([sys.executable, "-c", child], interval=0.02)
    assert 0.55 <= m.cpu_s < m.wall_s


def test_the_children_of_processes_beside_the_command_are_measured_apart() -> None:
    # A cluster's worker: a process started before the command, whose child (an executor) does the work.
    work = f"{ALLOCATE.format(mb=200)}\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass"
    worker = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {work!r}])"
    daemon = subprocess.Popen([sys.executable, "-c", worker])
    try:
        m = run_measured([sys.executable, "-c", "import time; time.sleep(2)"], interval=0.02, beside=[daemon.pid])
    finally:
        daemon.kill()
    assert m.cpu_s < 0.3
    assert 0.55 <= m.beside_cpu_s < m.wall_s
    assert 200 * 2**20 < m.beside_peak_rss_bytes < 400 * 2**20


def test_in_process_sampling_sees_memory_held_in_the_block() -> None:
    with sampling_rss(interval=0.02) as peak:
        before = peak()
        block = bytearray(300 * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touched, so resident
    assert peak() > before + 250 * 2**20
    assert len(block) == 300 * 2**20  # held until the block ended


def test_failure_keeps_the_exit_code_and_the_end_of_stderr() -> None:
    m = run_measured([sys.executable, "-c", "import sys; sys.exit('boom')"])
    assert (m.returncode, m.stderr_tail.strip()) == (1, "boom")


def test_a_memory_limit_stops_a_process_that_goes_past_it() -> None:
    from taxi_duration.ops.bench.measure import CGROUP_V1, CGROUP_V2

    if not (CGROUP_V1.is_dir() or (CGROUP_V2 / "cgroup.controllers").is_file()):
        pytest.skip("no memory cgroups on this machine")
    capped = run_measured([sys.executable, "-c", ALLOCATE.format(mb=400)], memory_limit=200 * 2**20)
    assert capped.returncode != 0
    fits = run_measured([sys.executable, "-c", ALLOCATE.format(mb=50)], memory_limit=200 * 2**20)
    assert fits.returncode == 0


@pytest.mark.parametrize(
    ("text", "size"), [("4GiB", 4 * 2**30), ("512MiB", 512 * 2**20), ("2GB", 2 * 10**9), ("1000", 1000)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_bytes(text) == size


def test_bad_size() -> None:
    with pytest.raises(UsageError, match="not a size"):
        parse_bytes("lots")
