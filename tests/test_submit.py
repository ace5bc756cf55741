"""`spark-submit` running the `taxi-duration` command: a real spark-submit process, its master and settings
kept, inputs and outputs given as `file://` URIs and as paths with spaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from taxi_duration import submit
from taxi_duration.core.months import parse_months
from taxi_duration.ingest.synth import generate
from tests.test_cli import cli

SPARK_SUBMIT = Path(sys.executable).with_name("spark-submit")
COUNTS = ("input_rows", "clean_rows", "quarantined_rows", "by_reason", "repaired")


def spark_submit(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SPARK_SUBMIT), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable, **env},
        timeout=600,
        check=False,
    )


def test_submit_path_prints_the_file_spark_submit_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "taxi_duration.submit", "--path"], capture_output=True, text=True, check=True
    )
    assert Path(result.stdout.strip()) == Path(submit.__file__).resolve()


@pytest.mark.spark
def test_spark_submit_validates_uris_and_paths_with_spaces_as_the_cli_does(tmp_path: Path) -> None:
    inputs = tmp_path / "trips in"
    generate(3_000, parse_months("2023-01..2023-02"), inputs, seed=5)
    plain = cli("validate", inputs, "--out", tmp_path / "plain", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    # The package as spark-submit ships it to executors: a zip for --py-files.
    src = Path(submit.__file__).parents[1]
    shipped = shutil.make_archive(str(tmp_path / "taxi_duration"), "zip", src, "taxi_duration")
    out = tmp_path / "out dir" / "validated"
    result = spark_submit(
        "--master",
        "local[2]",
        # Not the project's default (zstd): the output's codec shows spark-submit's --conf was kept.
        "--conf",
        "spark.sql.parquet.compression.codec=snappy",
        "--py-files",
        shipped,
        submit.__file__,
        "validate",
        "--engine",
        "spark",
        f"file://{inputs}/green_tripdata_2023-01.parquet",
        f"{inputs}/green_tripdata_2023-02.parquet",
        "--out",
        f"file://{out}",
        cwd=tmp_path,
        # A master nothing listens on: had the command's settings overridden spark-submit's, the job would fail.
        TAXI_DURATION_SPARK_MASTER="spark://127.0.0.1:9",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = json.loads((tmp_path / "plain" / "report.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert {k: report[k] for k in COUNTS} == {k: expected[k] for k in COUNTS}
    assert report["engine"] == "spark"
    assert [Path(f["path"]).name for f in report["files"]] == [Path(f["path"]).name for f in expected["files"]]
    assert all(f["path"].startswith("file:/") for f in report["files"]), report["files"]
    written = sorted((out / "clean").rglob("*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in written) == expected["clean_rows"]
    first = next(m for m in map(pq.read_metadata, written) if m.num_row_groups)
    assert first.row_group(0).column(0).compression == "SNAPPY"
    assert sorted(p.name for p in (tmp_path / "out dir").iterdir()) == ["validated"]  # no temporary left
