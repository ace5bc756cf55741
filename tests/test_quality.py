"""The validate job: outputs on disk, counts that reconcile on every engine, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from taxi_duration.core.errors import BadInputError, UsageError
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import FEATURE_SETS, TARGET
from taxi_duration.ingest.inputs import check_all
from taxi_duration.ingest.quality import QualityReport, parquet_rows, validate
from taxi_duration.ingest.validation import RULE_CODES
from tests.conftest import ALL_ENGINES, CASES, FAST_ENGINES, all_cases, green_row, write_jsonl, write_parquet


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_outputs_reconcile_and_report_every_reason(runtime: Runtime, tmp_path: Path) -> None:
    files = check_all([write_parquet(tmp_path / "green_tripdata_2023-01.parquet", all_cases())])
    out = tmp_path / "out"
    report = validate(runtime, files, out)

    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["input_rows"] == len(all_cases()) == on_disk["clean_rows"] + on_disk["quarantined_rows"]
    assert on_disk["quarantined_rows"] == len(CASES) + 1
    # Every rule but the date range (its cases need a file without a month: test_validation) and no line unread.
    assert on_disk["by_reason"] == dict.fromkeys(RULE_CODES, 1) | {"pickup_out_of_range": 0, "unreadable_line": 0}
    assert on_disk["repaired"] == {"passenger_count_defaulted": 0}
    assert parquet_rows(out / "clean") == report.clean_rows
    assert parquet_rows(out / "quarantine") == report.quarantined_rows
    quarantined = pq.read_table(out / "quarantine").column("reasons").to_pylist()
    assert sorted(quarantined) == sorted([*CASES, "duplicate"])
    assert set(pq.read_table(out / "clean").column("reasons").to_pylist()) == {None}
    assert "| duplicate | 1 |" in (out / "report.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["green_tripdata_2023-01.parquet", "out"]


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_all_clean_input_still_gets_an_empty_quarantine_of_the_same_schema(runtime: Runtime, tmp_path: Path) -> None:
    files = check_all([write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row()])])
    report = validate(runtime, files, tmp_path / "out", features=True)
    assert (report.clean_rows, report.quarantined_rows) == (1, 0)
    clean, quarantine = (pq.read_table(tmp_path / "out" / d) for d in ("clean", "quarantine"))
    assert quarantine.num_rows == 0
    assert quarantine.schema.names == clean.schema.names
    assert {TARGET, *FEATURE_SETS["with_distance"]} <= set(clean.schema.names)
    assert clean.column(TARGET).to_pylist() == [15.0]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_existing_output_is_kept_unless_overwrite(runtime: Runtime, tmp_path: Path) -> None:
    files = check_all([write_parquet(tmp_path / "green_tripdata_2023-01.parquet", all_cases())])
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(UsageError, match="--overwrite"):
        validate(runtime, files, out)
    assert (out / "precious.txt").read_text() == "keep me"
    validate(runtime, files, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["clean", "quarantine", "report.json", "report.md"]


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_a_value_no_engine_can_read_fails_cleanly_and_writes_nothing(runtime: Runtime, tmp_path: Path) -> None:
    event = {
        "pickup_datetime": "yesterday at noon",
        "dropoff_datetime": "2023-01-10T08:20:00",
        "pu_location_id": 74,
        "do_location_id": 75,
        "trip_distance": 3.1,
    }
    files = check_all([write_jsonl(tmp_path / "events.jsonl", [event])])
    with pytest.raises(BadInputError, match=r"events\.jsonl: .* could not read a value"):
        validate(runtime, files, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]


def _empty_files(folder: Path) -> list[Path]:
    """An empty file of every kind: a 0-row Parquet file, a CSV header, JSON lines with no line."""
    parquet = write_parquet(folder / "green_tripdata_2023-02.parquet", [green_row()])
    pq.write_table(pq.read_table(parquet).slice(0, 0), parquet)
    header = folder / "green_tripdata_2023-03.csv"
    header.write_text(",".join(green_row()) + "\n")
    nothing = folder / "events.jsonl"
    nothing.write_bytes(b"")
    return [parquet, header, nothing]


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_empty_files_are_valid_alone_and_in_a_batch(runtime: Runtime, tmp_path: Path) -> None:
    empty = check_all(_empty_files(tmp_path))
    report = validate(runtime, empty, tmp_path / "alone")
    assert (report.input_rows, report.clean_rows, report.quarantined_rows) == (0, 0, 0)
    assert parquet_rows(tmp_path / "alone" / "clean") == parquet_rows(tmp_path / "alone" / "quarantine") == 0
    assert "| events.jsonl | 0 | 0 | 0 | - |" in (tmp_path / "alone" / "report.md").read_text()

    full = check_all([write_parquet(tmp_path / "green_tripdata_2023-01.parquet", all_cases())])
    batch = validate(runtime, [*full, *empty], tmp_path / "batch")
    assert (batch.input_rows, batch.quarantined_rows) == (len(all_cases()), len(CASES) + 1)
    assert [f["input_rows"] for f in batch.files] == [len(all_cases()), 0, 0, 0]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_a_files_share_of_a_report_is_what_validating_it_alone_reports(runtime: Runtime, tmp_path: Path) -> None:
    # Training validates its three months in one job and reports each month's share (`QualityReport.of_files`).
    month = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", all_cases())
    events = write_jsonl(tmp_path / "events.jsonl", [green_row(fare_amount=900.0 + i) for i in range(20)])
    events.write_text(events.read_text() + "garbage\n" + json.dumps(green_row(passenger_count=None), default=str))
    both = validate(runtime, check_all([month, events]), tmp_path / "both")
    shares = [both.of_files({path.name}) for path in (month, events)]
    for path, share in zip((month, events), shares, strict=True):
        alone = validate(runtime, check_all([path]), tmp_path / path.stem)
        assert _counts(share) == _counts(alone)
    assert [s.quarantined_rows for s in shares] == [len(CASES) + 1, 1]
    assert shares[1].repaired == {"passenger_count_defaulted": 1}
    assert sum(s.input_rows for s in shares) == both.input_rows


def _counts(report: QualityReport) -> dict[str, object]:
    return {k: v for k, v in report.to_dict().items() if k not in ("elapsed_s", "created_at")}


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_bad_json_lines_are_quarantined_by_number_and_the_good_ones_read(runtime: Runtime, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [green_row(fare_amount=float(i)) for i in range(50)])
    lines = path.read_text().splitlines()
    for number in (2, 11, 23, 37, 55):  # 5 garbage lines among the 50 good ones, at these line numbers
        lines.insert(number - 1, "garbage" if number % 2 else '{"VendorID": 2,')
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    report = validate(runtime, check_all([path]), out)
    assert (report.input_rows, report.clean_rows, report.quarantined_rows) == (55, 50, 5)
    assert report.by_reason["unreadable_line"] == 5
    assert report.files[0]["input_rows"] == 55
    listed = [json.loads(line) for line in (out / "unreadable_lines.jsonl").read_text().splitlines()]
    assert [(x["source_file"], x["line"]) for x in listed] == [("events.jsonl", n) for n in (2, 11, 23, 37, 55)]
    assert all(x["reason"].startswith("not valid JSON") for x in listed)
    clean = pq.read_table(out / "clean").column("fare_amount").to_pylist()
    assert sorted(clean) == [float(i) for i in range(50)]


def test_validate_on_duckdb_imports_no_pandas_and_no_shapefile_reader(tmp_path: Path) -> None:
    """The embedded validate job in a fresh process: pandas (0.25 s) and the shapefile readers (0.1 s) would
    be start-up cost the job never uses on files with zones."""
    files = [write_parquet(tmp_path / "green_tripdata_2023-01.parquet", all_cases())]
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from taxi_duration.core.config import Engine, Settings\n"
        "from taxi_duration.engines.frames import Runtime\n"
        "from taxi_duration.ingest.inputs import check_all\n"
        "from taxi_duration.ingest.quality import validate\n"
        "import taxi_duration.cli.main\n"
        "runtime = Runtime.open(Settings(), Engine.DUCKDB)\n"
        "report = validate(runtime, check_all([Path(sys.argv[1])]), Path(sys.argv[2]), features=True)\n"
        "print(report.clean_rows, *(m for m in ('pandas', 'pyproj', 'shapefile') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(files[0]), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(len(all_cases()) - len(CASES) - 1)]
