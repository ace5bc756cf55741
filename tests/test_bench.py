"""The engine benchmark: its references do the same job as ours, and a small run writes its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from taxi_duration.core.config import Engine, load_settings
from taxi_duration.engines.frames import Runtime
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ingest.quality import validate
from taxi_duration.ops.bench.engines import figure, in_process, synthetic
from taxi_duration.ops.bench.reference import on_duckdb, on_polars, on_spark, spec


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic(5_000, tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def ours_out(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our `validate --features` on DuckDB, written once for every reference to be compared with."""
    out = tmp_path_factory.mktemp("ours") / "out"
    runtime = Runtime.open(load_settings(), Engine.DUCKDB)
    validate(runtime, check_all(discover([data])), out, features=True)
    runtime.close()
    return out


@pytest.fixture(scope="module")
def ours(ours_out: Path) -> dict[str, int]:
    report = json.loads((ours_out / "report.json").read_text())
    return {"clean": report["clean_rows"], "quarantine": report["quarantined_rows"]}


def assert_same_clean_rows(ours_out: Path, out: Path) -> None:
    """The reference's clean rows are ours: the same columns in the same order and of the same types (the
    engine's flavour of string and nullability aside), and the same values, floats within a tight tolerance."""
    expected, got = pq.read_table(ours_out / "clean"), ds.dataset(out / "_status=clean").to_table()

    def types(table: pa.Table) -> list[tuple[str, pa.DataType]]:
        return [(f.name, pa.string() if f.type == pa.large_string() else f.type) for f in table.schema]

    assert types(got) == types(expected)
    assert expected.num_rows > 0
    # Clean rows hold no duplicate: the trip fields and the file identify each one.
    key = [*spec.DUPLICATE_KEY, "source_file"]
    frames = [t.to_pandas().sort_values(key, ignore_index=True) for t in (expected, got)]
    pd.testing.assert_frame_equal(*frames, check_dtype=False, check_exact=False, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("job", [on_duckdb.duckdb_sql, on_polars.polars], ids=["duckdb_sql", "polars"])
def test_a_reference_writes_our_counts_and_clean_rows(
    job: Callable[[Path, list[str]], dict[str, int]], data: Path, ours_out: Path, ours: dict[str, int], tmp_path: Path
) -> None:
    counts = job(tmp_path / "out", sorted(map(str, data.glob("*.parquet"))))
    assert counts == ours
    assert ours["quarantine"] > 0
    assert_same_clean_rows(ours_out, tmp_path / "out")


@pytest.mark.spark
def test_pyspark_reference_writes_our_counts_and_clean_rows(
    spark: object, data: Path, ours_out: Path, ours: dict[str, int], tmp_path: Path
) -> None:
    assert on_spark.pyspark(tmp_path / "out", sorted(map(str, data.glob("*.parquet")))) == ours
    assert_same_clean_rows(ours_out, tmp_path / "out")


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
            "duckdb,duckdb-sql,pandas,polars",
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
        ("polars", 3000, True),
    ]
    assert all(r["wall_s"] > 0 and r["peak_rss_bytes"] > 10 * 2**20 for r in rows)
    assert "| duckdb-sql | 3,000 |" in (out / "results.md").read_text()
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
