"""The engine benchmark: its references do the same job as ours, and a small run writes its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taxi_duration.bench import reference
from taxi_duration.bench.engines import figure, in_process, synthetic
from taxi_duration.config import Engine, load_settings
from taxi_duration.engines import Runtime
from taxi_duration.inputs import check_all, discover
from taxi_duration.quality import validate


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic(5_000, tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def ours(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    runtime = Runtime.open(load_settings(), Engine.DUCKDB)
    report = validate(runtime, check_all(discover([data])), tmp_path_factory.mktemp("ours") / "out", features=True)
    return {"clean": report.clean_rows, "quarantine": report.quarantined_rows}


def test_duckdb_sql_reference_agrees_with_ours(data: Path, ours: dict[str, int], tmp_path: Path) -> None:
    assert reference.duckdb_sql(tmp_path / "out", sorted(map(str, data.glob("*.parquet")))) == ours
    assert ours["quarantine"] > 0


@pytest.mark.spark
def test_pyspark_reference_agrees_with_ours(spark: object, data: Path, ours: dict[str, int], tmp_path: Path) -> None:
    assert reference.pyspark(tmp_path / "out", sorted(map(str, data.glob("*.parquet")))) == ours


def test_the_job_timed_in_process_gives_the_same_counts(data: Path, ours: dict[str, int], tmp_path: Path) -> None:
    files = check_all(discover([data]))
    results = []
    for engine in (Engine.DUCKDB, Engine.PANDAS):
        runtime = Runtime.open(load_settings(data_dir=tmp_path), engine)
        result, report = in_process(runtime, files, tmp_path / engine)
        runtime.close()
        assert {"clean": report.clean_rows, "quarantine": report.quarantined_rows} == ours
        assert (result.engine, result.rows, result.ok) == (engine, sum(f.rows for f in files), True)
        assert result.wall_s > 0
        assert result.cpu_s > 0
        assert result.peak_rss_bytes > 50 * 2**20  # this Python, its libraries loaded
        results.append(result)
    assert len(figure(results).axes) == 2


def test_a_small_bench_run_writes_json_markdown_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "results"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "taxi_duration",
            "bench",
            "engines",
            "--rows",
            "3000",
            "--engines",
            "duckdb,duckdb-sql,pandas",
            "--out",
            str(out),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())
    assert [(r["engine"], r["rows"], r["ok"]) for r in rows] == [
        ("duckdb", 3000, True),
        ("duckdb-sql", 3000, True),
        ("pandas", 3000, True),
    ]
    assert all(r["wall_s"] > 0 and r["peak_rss_bytes"] > 10 * 2**20 for r in rows)
    assert "| duckdb-sql | 3,000 |" in (out / "results.md").read_text()
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
