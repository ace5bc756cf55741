"""The Spark session builder: the Java check that tells a user what to install, and the tuned defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taxi_duration.errors import EngineUnavailableError
from taxi_duration.spark import LOCAL_DEFAULTS, check_java, java_version


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
