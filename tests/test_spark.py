"""The Spark session builder: the Java check that tells a user what to install, and the tuned defaults."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from taxi_duration.core.atomic import run_tag
from taxi_duration.core.errors import EngineUnavailableError
from taxi_duration.engines.spark import (
    LOCAL_DEFAULTS,
    PACKAGE_ARCHIVE,
    PYFILES_PREFIX,
    check_java,
    defaults_for,
    java_version,
    jvm_console_to,
    on_this_machine,
    package_archive,
    task_slots,
)
from taxi_duration.ops.cluster import Cluster


def fake_jdk(tmp_path: Path, version_line: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)
    return home


@pytest.mark.parametrize(
    ("line", "major"),
    [('openjdk version "17.0.15" 2025-04-15', 17), ('java version "1.8.0_402"', 8), ('openjdk version "21" x', 21)],
)
def test_java_version_reads_the_major_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, major: int
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, line)))
    assert java_version() == major


def test_old_java_is_refused_with_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path, 'openjdk version "11.0.2"')))
    with pytest.raises(EngineUnavailableError, match=r"found Java 11\. Spark 4 needs Java 17 or 21.*apt-get install"):
        check_java()


def test_missing_java_is_refused_with_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(EngineUnavailableError, match=r"no Java was found.*--engine duckdb"):
        check_java()


@pytest.mark.spark
def test_session_runs_with_the_tuned_defaults(spark: Any) -> None:
    conf = spark.sparkContext.getConf()
    for key in ("spark.sql.shuffle.partitions", "spark.sql.session.timeZone", "spark.sql.adaptive.enabled"):
        assert conf.get(key) == LOCAL_DEFAULTS[key]
    assert spark.range(10).count() == 10


def test_building_a_query_records_no_python_call_sites(spark: Any) -> None:
    """PySpark 4 would record each column function's call site, at several JVM round trips each (`LOCAL_DEFAULTS`)."""
    from pyspark.errors.utils import is_debugging_enabled

    assert not is_debugging_enabled()


def test_task_slots_are_the_cores_the_executors_run_tasks_on(spark: Any) -> None:
    assert task_slots(spark.sparkContext) == 2  # local[2]


def test_a_jvm_started_in_the_block_writes_its_console_to_the_log_and_the_screen_is_ours_again(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """What `get_spark` does for a command's session: a process started inside the block (the JVM) keeps the log
    as its standard error for life; this process's own standard error is back when the block ends."""
    log = tmp_path / "logs" / "spark.log"
    with jvm_console_to(log):
        child = subprocess.Popen(["sh", "-c", "echo started >&2; sleep 0.2; echo later >&2"])
    print("ours", file=sys.stderr)
    child.wait()
    assert log.read_text().split() == ["started", "later"]
    assert capfd.readouterr().err.split() == ["ours"]


def test_a_killed_drivers_shipped_archive_is_removed_by_the_next_one() -> None:
    """The archive a driver ships lies in a temporary folder removed at exit; a driver killed outright cannot,
    so the next one removes the folders of runs that are gone (and never a live run's)."""
    dead = Path(tempfile.mkdtemp(prefix=f"{PYFILES_PREFIX}999999999-1-"))
    (dead / PACKAGE_ARCHIVE).write_bytes(b"a killed driver's archive")
    archive = package_archive()
    try:
        assert not dead.exists()
        assert archive.is_file()
        assert archive.parent.name.startswith(f"{PYFILES_PREFIX}{run_tag()}-")
    finally:
        shutil.rmtree(archive.parent)


@pytest.mark.parametrize("master", ["spark://10.0.0.5:7077", "yarn", "k8s://https://api:6443"])
def test_a_cluster_keeps_sparks_own_shuffle_partitions_and_the_other_defaults(master: str) -> None:
    assert "spark.sql.shuffle.partitions" not in defaults_for(master)
    assert defaults_for(master)["spark.sql.session.timeZone"] == "UTC"
    assert defaults_for("local[2]")["spark.sql.shuffle.partitions"] == "8"


@pytest.mark.parametrize(
    ("master", "here"),
    [
        ("local[2]", True),
        ("spark://127.0.0.1:7077", True),
        ("spark://localhost:7077,127.0.0.1:7078", True),
        ("spark://head:7077", False),
        ("spark://127.0.0.1:7077,head:7077", False),
        ("yarn", False),
    ],
)
def test_executors_on_this_machine_are_told_apart_from_a_remote_cluster(master: str, here: bool) -> None:
    assert on_this_machine(master) is here


# A driver on the cluster that asks its executors where they import the package from.
WHERE_EXECUTORS_IMPORT = """
import sys
from taxi_duration.engines.spark import get_spark

def where(_):
    import taxi_duration
    return taxi_duration.__file__

spark = get_spark(sys.argv[1], "1g")
print("\\n".join(sorted(set(spark.sparkContext.parallelize(range(8), 8).map(where).collect()))))
"""


def test_executors_import_the_package_the_driver_ships(spark_cluster: Cluster) -> None:
    # Without the shipped archive they would import whatever their interpreter has installed (here an
    # editable install of another checkout, or nothing at all on a real cluster's machines).
    result = subprocess.run(
        [sys.executable, "-c", WHERE_EXECUTORS_IMPORT, spark_cluster.master_url],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = result.stdout.split()
    assert found
    assert all(PACKAGE_ARCHIVE in Path(path).parts for path in found), found
