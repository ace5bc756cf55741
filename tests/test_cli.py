"""The command line as a user meets it: a real process, its exit code, its one-line errors."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from taxi_duration.core.months import parse_months
from taxi_duration.ingest.synth import generate
from tests.conftest import green_row, write_parquet


def cli(*args: str | Path, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taxi_duration", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=300,
        check=False,
    )


def test_help_lists_every_subcommand() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("synth", "download", "inspect", "validate", "run"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("command", "flags", "valued"),
    [
        ((), ("--version", "--help"), ()),
        (("validate",), ("--features", "--overwrite", "--help"), ("--out <path>",)),
        (("download",), ("--shapes / --no-shapes",), ("--dest <path>",)),
    ],
)
def test_help_shows_on_off_flags_without_a_value(
    command: tuple[str, ...], flags: tuple[str, ...], valued: tuple[str, ...]
) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    for flag in flags:  # the flag, then its help text: no placeholder between them
        assert re.search(rf"^\s+{re.escape(flag)}\s{{2,}}[A-Z]", result.stdout, re.MULTILINE), flag
    for option in valued:  # options that take a value still say what kind
        assert option in result.stdout


def test_validate_writes_outputs_and_exits_zero(tmp_path: Path) -> None:
    data = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row(), green_row(trip_distance=0.0)])
    result = cli("validate", data, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["input_rows"], report["clean_rows"], report["quarantined_rows"]) == (2, 1, 1)
    assert "non_positive_distance" in result.stdout


def test_corrupt_file_is_one_clear_line_and_no_output(tmp_path: Path) -> None:
    good = write_parquet(tmp_path / "good.parquet", [green_row()] * 20)
    bad = tmp_path / "green_tripdata_2023-01.parquet"
    bad.write_bytes(good.read_bytes()[:100])
    result = cli("validate", good, bad, "--out", tmp_path / "out")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {bad}: not a readable Parquet file")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_engine_is_a_usage_error(tmp_path: Path) -> None:
    data = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row()])
    result = cli("validate", data, "--out", tmp_path / "out", "--engine", "excel")
    assert result.returncode == 2
    assert "unknown engine 'excel'" in result.stderr


@pytest.mark.parametrize("months", ["2023-13", "2023-03..2023-01", "january"])
def test_bad_month_specs_are_refused(tmp_path: Path, months: str) -> None:
    result = cli("synth", "--rows", "10", "--months", months, "--out", tmp_path / "syn")
    assert result.returncode == 2
    assert result.stderr.startswith("error:")
    assert not (tmp_path / "syn").exists()


def test_inspect_shows_rows_service_month_zones_and_the_column_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per row: no cell wrapped
    named = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row()] * 3)
    unnamed = write_parquet(
        tmp_path / "trips.parquet", [green_row(), green_row(lpep_pickup_datetime=datetime(2023, 3, 5))]
    )
    kaggle = tmp_path / "kaggle.csv"
    kaggle.write_text("id,pickup_datetime,pickup_longitude,pickup_latitude,dropoff_longitude,dropoff_latitude\n")
    result = cli("inspect", named, unnamed, kaggle)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "green" in out
    assert "2023-01 " in out
    assert "202301" not in out
    assert "2023-01..2023-03 (in data)" in out  # from the Parquet footer, not the name
    assert "unknown (not in the name)" in out
    assert "?" not in out
    assert "lpep_pickup_datetime -> pickup_datetime" in out
    assert "PULocationID -> pu_location_id" in out
    assert "pu_location_id, do_location_id: from the coordinates" in out


def test_validate_of_an_empty_file_reports_zeros_and_exits_zero(tmp_path: Path) -> None:
    header = tmp_path / "green_tripdata_2023-01.csv"
    header.write_text(",".join(green_row()) + "\n")
    result = cli("validate", header, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["input_rows"], report["clean_rows"], report["quarantined_rows"]) == (0, 0, 0)


def test_validate_says_a_row_may_count_under_several_reasons(tmp_path: Path) -> None:
    row = green_row(trip_distance=0.0, fare_amount=-1.0)
    result = cli("validate", write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [row]), "--out", tmp_path / "o")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "non_positive_distance" in out
    assert "negative_fare" in out
    assert "a quarantined row counts under every reason it breaks" in out
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["quarantined_rows"] == 1 < sum(report["by_reason"].values())
    assert "several" in report["by_reason_note"]


def test_train_needs_three_months_and_says_so(tmp_path: Path) -> None:
    data = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row()] * 3)
    env_dir = tmp_path / "data"
    result = cli("train", "--data", data, "--config", _config(tmp_path, env_dir))
    assert result.returncode == 2
    assert "a time-honest split needs at least 3 months of data, found 1: green_tripdata_2023-01.parquet 2023-01" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_an_unknown_feature_set_is_refused_before_any_data_is_read(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-file.parquet"  # never looked at: the name is refused first
    flag = cli("train", "--data", missing, "--feature-set", "everything", "--config", _config(tmp_path))
    assert flag.returncode == 2
    assert "Error: Invalid value for '--feature-set'" in flag.stderr
    assert "'everything' is not one of 'with_distance', 'pretrip'" in flag.stderr
    env = cli("train", "--data", missing, "--config", _config(tmp_path), TAXI_DURATION_FEATURE_SET="everything")
    assert env.returncode == 2
    assert env.stderr.startswith("error: invalid settings (feature_set: Input should be 'with_distance' or 'pretrip'")
    assert len(env.stderr.strip().splitlines()) == 1
    assert "Traceback" not in flag.stderr + env.stderr
    assert "--feature-set <with_distance|pretrip>" in cli("train", "--help").stdout  # the choices, listed


def test_evaluate_with_a_model_that_does_not_exist_is_one_clear_line(tmp_path: Path) -> None:
    data = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row()] * 3)
    result = cli("evaluate", "--model", "models:/taxi-duration/99", "--data", data, "--config", _config(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot load model 'models:/taxi-duration/99'")
    assert "Traceback" not in result.stderr


def test_train_prints_an_mlflow_command_that_works_as_printed(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    generate(12_000, parse_months("2023-01..2023-03"), raw, seed=4)
    data_dir = tmp_path / "data"
    narrow = {"COLUMNS": "60", "PATH": "/usr/bin:/bin"}  # a narrow terminal, and no virtualenv on the PATH
    # A quick model on 1,500 of the training month's rows (--sample-rows), which the job says.
    args = ["--search", "quick", "--sample-rows", "1500", "--out", tmp_path / "outcome.json"]
    result = cli("train", "--data", raw, *args, "--config", _config(tmp_path, data_dir), **narrow)
    assert result.returncode == 0, result.stderr
    outcome = json.loads((tmp_path / "outcome.json").read_text())
    assert outcome["trained_rows"] == 1_500 < outcome["rows"]["train"]
    said = " ".join((result.stderr + result.stdout).split())
    assert "training on a sample of 1,500 rows" in said
    assert f"trained on a sample of 1,500 of {outcome['rows']['train']:,} training rows" in said
    command = next(line for line in result.stdout.splitlines() if " ui --backend-store-uri " in line)
    program, *args = shlex.split(command)
    assert args == ["ui", "--backend-store-uri", f"sqlite:///{data_dir}/mlflow.db"]
    assert subprocess.run([program, "ui", "--help"], capture_output=True, timeout=120).returncode == 0


def _config(tmp_path: Path, data_dir: Path | None = None) -> Path:
    data_dir = data_dir or tmp_path / "data"
    config = tmp_path / "taxi-duration.toml"
    config.write_text(f'data_dir = "{data_dir}"\nmlflow_tracking_uri = "sqlite:///{data_dir}/mlflow.db"\n')
    return config
