"""Finding files and refusing bad ones with a message that names the file and the problem."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_duration.core.errors import BadInputError, UsageError
from taxi_duration.ingest.inputs import check, discover
from taxi_duration.train.splits import choose
from tests.conftest import green_row, write_jsonl, write_parquet

CSV_HEADER = (
    "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,PULocationID,DOLocationID"
)
CSV_ROW = "1,2019-06-01 00:55:13,2019-06-01 01:06:17,1,2.0,145,146"


def test_discover_expands_files_globs_and_folders(tmp_path: Path) -> None:
    a = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row()])
    b = write_parquet(tmp_path / "green_tripdata_2023-02.parquet", [green_row()])
    (tmp_path / "notes.txt").write_text("not data")
    assert discover([tmp_path]) == [a, b]
    assert discover([str(tmp_path / "*2023-02*")]) == [b]
    assert discover([a, a]) == [a]


def test_discover_refuses_two_files_of_one_name(tmp_path: Path) -> None:
    a = write_parquet(tmp_path / "a" / "green_tripdata_2023-01.parquet", [green_row()])
    b = write_parquet(tmp_path / "b" / "green_tripdata_2023-01.parquet", [green_row()])
    with pytest.raises(UsageError, match=r"several inputs are named green_tripdata_2023-01\.parquet"):
        discover([a, b])


def test_discover_rejects_what_no_reader_handles(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        discover([tmp_path / "missing.parquet"])
    (tmp_path / "trips.xlsx").write_text("x")
    with pytest.raises(UsageError, match="unsupported file type"):
        discover([tmp_path / "trips.xlsx"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no trip files"):
        discover([tmp_path / "empty"])


def test_check_counts_rows_and_reads_service_and_month_from_the_name(tmp_path: Path) -> None:
    f = check(write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row(), green_row()]))
    assert (f.format, f.rows, f.service, f.month) == ("parquet", 2, "green", 202301)


def test_service_comes_from_column_prefix_when_the_name_says_nothing(tmp_path: Path) -> None:
    path = tmp_path / "trips.csv"
    path.write_text(f"{CSV_HEADER}\n{CSV_ROW}\n")
    f = check(path)
    assert (f.service, f.month, f.rows) == ("yellow", None, 1)


def test_truncated_parquet_is_refused(tmp_path: Path) -> None:
    good = write_parquet(tmp_path / "good.parquet", [green_row()] * 50)
    bad = tmp_path / "green_tripdata_2023-01.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BadInputError, match=r"green_tripdata_2023-01\.parquet: not a readable Parquet file"):
        check(bad)


@pytest.mark.parametrize("name", ["x.parquet", "x.csv", "x.jsonl"])
def test_a_file_of_no_bytes_is_empty_not_bad(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    f = check(tmp_path / name)
    assert (f.rows, f.columns, f.bad_lines) == (0, (), ())


def test_a_header_or_a_footer_without_rows_is_an_empty_file(tmp_path: Path) -> None:
    csv_path = tmp_path / "yellow.csv"
    csv_path.write_text(CSV_HEADER + "\n")
    parquet = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row()])
    pq.write_table(pq.read_table(parquet).slice(0, 0), parquet)
    blank = tmp_path / "events.jsonl"
    blank.write_text("\n  \n")
    assert [check(p).rows for p in (csv_path, parquet, blank)] == [0, 0, 0]
    assert check(csv_path).service == "yellow"  # its header still names its columns


def test_a_header_without_rows_that_is_not_trip_data_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "weather.csv"
    path.write_text("date,temp_c\n")
    with pytest.raises(BadInputError, match="not trip data"):
        check(path)


def test_parquet_that_is_not_trip_data_names_the_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "weather.parquet"
    pq.write_table(pa.table({"date": ["2023-01-01"], "temp_c": [3.5]}), path)
    with pytest.raises(BadInputError, match=r"weather\.parquet: not trip data: missing required column\(s\) pickup"):
        check(path)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (CSV_ROW + ",extra", "line 3: 8 fields where the header has 7"),
        ("1,2019-06-01 00:55:13,2019-06-01 01:06:17", "line 3: 3 fields where the header has 7"),
    ],
)
def test_csv_with_extra_or_missing_fields_names_the_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "yellow.csv"
    path.write_text(f"{CSV_HEADER}\n{CSV_ROW}\n{line}\n")
    with pytest.raises(BadInputError, match=problem):
        check(path)


def test_csv_without_required_columns_is_not_trip_data(tmp_path: Path) -> None:
    path = tmp_path / "yellow.csv"
    path.write_text("VendorID,passenger_count\n1,2\n")
    with pytest.raises(BadInputError, match="not trip data"):
        check(path)


def test_bad_json_lines_are_set_aside_by_number_and_reason(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "events.jsonl", [green_row()] * 3)
    good = path.read_text().splitlines()
    garbage = ['{"VendorID": 2, "lpep_pickup_datetime": ', "[1, 2]", "42"]
    path.write_bytes(
        "\n".join([good[0], garbage[0], good[1], garbage[1], "", good[2], garbage[2]]).encode() + b"\n\xff\n"
    )
    f = check(path)
    assert f.rows == 3
    assert [(b.line, b.reason.split(" (")[0]) for b in f.bad_lines] == [
        (2, "not valid JSON"),
        (4, "expected a JSON object, got list"),
        (7, "expected a JSON object, got int"),
        (8, "not UTF-8"),
    ]


def test_json_lines_with_no_object_at_all_are_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("VendorID,lpep_pickup_datetime\n1,2023-01-01\n")  # a CSV under a JSON name
    with pytest.raises(BadInputError, match=r"events\.jsonl: no line is a JSON object.*line 1: not valid JSON"):
        check(path)


def test_json_lines_count_rows_and_union_their_keys(tmp_path: Path) -> None:
    rows = [green_row(), green_row(), {**green_row(), "extra_field": 1}]
    f = check(write_jsonl(tmp_path / "events.jsonl", rows))
    assert f.rows == 3
    assert "extra_field" in f.columns


def in_month(month: int, n: int = 20, strays: int = 0) -> list[dict[str, Any]]:
    """`n` green trips picked up in 2023-`month`, then `strays` picked up on the last day of the month before."""
    start = datetime(2023, month, 3, 8)
    trips = [green_row(lpep_pickup_datetime=start + timedelta(hours=i)) for i in range(n)]
    stray = datetime(2023, month, 1) - timedelta(hours=2)
    return trips + [green_row(lpep_pickup_datetime=stray) for _ in range(strays)]


def test_a_parquet_file_named_without_a_month_takes_the_month_of_its_pickups(tmp_path: Path) -> None:
    """A user's own names must not decide whether training runs: `a`, `b`, `c` split as their months do."""
    files = [write_parquet(tmp_path / f"{name}.parquet", in_month(m, strays=1)) for m, name in enumerate("abc", 1)]
    checked = [check(p) for p in files]
    assert [f.month for f in checked] == [202301, 202302, 202303]  # a stray pickup of the month before aside
    assert str(choose(checked)) == "train 2023-01, validate 2023-02, test 2023-03"


def test_a_file_of_several_months_without_one_in_its_name_is_named_in_the_split_error(tmp_path: Path) -> None:
    mixed = write_parquet(tmp_path / "mixed.parquet", in_month(1, 10) + in_month(2, 10))
    one = write_parquet(tmp_path / "one.parquet", in_month(3))
    checked = [check(mixed), check(one)]
    assert [f.month for f in checked] == [None, 202303]
    with pytest.raises(UsageError) as refused:
        choose(checked)
    said = str(refused.value)
    assert "needs at least 3 months of data, found 1: mixed.parquet (no month), one.parquet 2023-03" in said
    assert "the month of 90% of its pickups" in said


def test_real_months_renamed_a_b_c_get_the_months_of_their_tlc_names(shared_data: Path, tmp_path: Path) -> None:
    named = [shared_data / f"green_tripdata_2023-0{m}.parquet" for m in (1, 2, 3)]
    renamed = [tmp_path / f"{letter}.parquet" for letter in "abc"]
    for source, target in zip(named, renamed, strict=True):
        target.symlink_to(source)
    assert [check(p).month for p in renamed] == [check(p).month for p in named] == [202301, 202302, 202303]
