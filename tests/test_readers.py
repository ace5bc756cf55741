"""Every known variant of TLC trip files reads into the same canonical table, on every engine."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import narwhals as nw
import pyarrow as pa
import pytest

from taxi_duration.core import schema
from taxi_duration.engines.frames import Runtime
from taxi_duration.ingest.inputs import check_all
from taxi_duration.ingest.readers import read_trips
from tests.conftest import ALL_ENGINES, GREEN_TYPES, green_row, write_jsonl, write_parquet

pytestmark = pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)

# Era A: int64 ids, double counts, ehail_fee typed null.
ERA_A_TYPES = {
    **GREEN_TYPES,
    "VendorID": pa.int64(),
    "PULocationID": pa.int64(),
    "DOLocationID": pa.int64(),
    "passenger_count": pa.float64(),
    "RatecodeID": pa.float64(),
    "payment_type": pa.float64(),
    "trip_type": pa.float64(),
    "store_and_fwd_flag": pa.string(),
    "ehail_fee": pa.null(),
}

YELLOW_TYPES = {
    "VendorID": pa.int64(),
    "tpep_pickup_datetime": pa.timestamp("us"),
    "tpep_dropoff_datetime": pa.timestamp("us"),
    "passenger_count": pa.float64(),
    "trip_distance": pa.float64(),
    "PULocationID": pa.int32(),
    "DOLocationID": pa.int32(),
    "fare_amount": pa.float64(),
    "Airport_fee": pa.float64(),
}


def yellow_row(**overrides: Any) -> dict[str, Any]:
    g = green_row()
    row = {
        "VendorID": 1,
        "tpep_pickup_datetime": g["lpep_pickup_datetime"],
        "tpep_dropoff_datetime": g["lpep_dropoff_datetime"],
        "passenger_count": 2.0,
        "trip_distance": 1.5,
        "PULocationID": 132,
        "DOLocationID": 230,
        "fare_amount": 52.0,
        "Airport_fee": 1.75,
    }
    row.update(overrides)
    return row


def read(runtime: Runtime, *paths: Path) -> list[dict[str, Any]]:
    frame = read_trips(runtime, check_all(list(paths)))
    assert list(frame.collect_schema()) == list(schema.NAMES)
    rows = frame.sort(schema.SOURCE_FILE, schema.PICKUP).collect().to_arrow().to_pylist()
    return rows


EXPECTED_GREEN = {
    schema.PICKUP: datetime(2023, 1, 10, 8, 0),
    schema.DROPOFF: datetime(2023, 1, 10, 8, 15),
    schema.PU_ZONE: 74,
    schema.DO_ZONE: 75,
    schema.PASSENGERS: 1,
    schema.DISTANCE: 2.5,
    schema.VENDOR: 2,
    schema.RATECODE: 1,
    schema.PAYMENT: 1,
    schema.FARE: 14.2,
    schema.SERVICE: "green",
    schema.SOURCE_MONTH: 202301,
    **dict.fromkeys(schema.COORDINATES),  # zone-era files carry no coordinates
}


def test_green_era_b(runtime: Runtime, tmp_path: Path) -> None:
    (row,) = read(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row()]))
    assert row == {**EXPECTED_GREEN, schema.SOURCE_FILE: "green_tripdata_2023-01.parquet"}


def test_green_era_a_types_and_null_columns(runtime: Runtime, tmp_path: Path) -> None:
    rows = [green_row(passenger_count=1.0, RatecodeID=1.0, payment_type=1.0, trip_type=1.0, ehail_fee=None)]
    (row,) = read(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", rows, ERA_A_TYPES))
    assert row == {**EXPECTED_GREEN, schema.SOURCE_FILE: "green_tripdata_2023-01.parquet"}


def test_eras_a_and_b_read_together(runtime: Runtime, tmp_path: Path) -> None:
    a = write_parquet(tmp_path / "green_tripdata_2022-12.parquet", [green_row(passenger_count=3.0)], ERA_A_TYPES)
    b = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [green_row()])
    rows = read(runtime, a, b)
    assert [(r[schema.SOURCE_MONTH], r[schema.PASSENGERS]) for r in rows] == [(202212, 3), (202301, 1)]


def test_yellow_parquet_with_either_airport_fee_spelling(runtime: Runtime, tmp_path: Path) -> None:
    upper = write_parquet(tmp_path / "yellow_tripdata_2023-01.parquet", [yellow_row()], YELLOW_TYPES)
    lower_types = {("airport_fee" if k == "Airport_fee" else k): v for k, v in YELLOW_TYPES.items()}
    lower_row = {("airport_fee" if k == "Airport_fee" else k): v for k, v in yellow_row().items()}
    lower = write_parquet(tmp_path / "yellow_tripdata_2023-02.parquet", [lower_row], lower_types)
    rows = read(runtime, upper, lower)
    assert [(r[schema.SERVICE], r[schema.PU_ZONE], r[schema.PASSENGERS]) for r in rows] == [("yellow", 132, 2)] * 2


def test_missing_optional_columns_are_null(runtime: Runtime, tmp_path: Path) -> None:
    minimal = {
        k: green_row()[k]
        for k in ("lpep_pickup_datetime", "lpep_dropoff_datetime", "PULocationID", "DOLocationID", "trip_distance")
    }
    (row,) = read(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [minimal]))
    assert row[schema.VENDOR] is None
    assert row[schema.PASSENGERS] is None
    assert row[schema.FARE] is None
    assert row[schema.PU_ZONE] == 74


def test_yellow_csv(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "yellow_tripdata_2019-06.csv"
    path.write_text(
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,"
        "PULocationID,DOLocationID,payment_type,fare_amount\n"
        "1,2019-06-01 00:55:13,2019-06-01 01:06:17,1.0,2.0,,145,146,2,9.5\n"
    )
    (row,) = read(runtime, path)
    assert row[schema.PICKUP] == datetime(2019, 6, 1, 0, 55, 13)
    assert row[schema.DROPOFF] == datetime(2019, 6, 1, 1, 6, 17)
    assert (row[schema.PASSENGERS], row[schema.DISTANCE], row[schema.RATECODE]) == (1, 2.0, None)
    assert (row[schema.SERVICE], row[schema.SOURCE_MONTH], row[schema.FARE]) == ("yellow", 201906, 9.5)


@pytest.mark.parametrize(
    ("pickup", "expected"),
    [("2023-01-10T08:00:00", datetime(2023, 1, 10, 8)), ("2023-01-10 08:00:05.250", datetime(2023, 1, 10, 8, 0, 5))],
)
def test_json_events_with_canonical_names(runtime: Runtime, tmp_path: Path, pickup: str, expected: datetime) -> None:
    event = {
        "pickup_datetime": pickup,
        "dropoff_datetime": "2023-01-10T08:20:00",
        "pu_location_id": 74,
        "do_location_id": 75,
        "passenger_count": 2,
        "trip_distance": 3.1,
    }
    (row,) = read(runtime, write_jsonl(tmp_path / "events.jsonl", [event]))
    assert (row[schema.PICKUP], row[schema.DROPOFF]) == (expected, datetime(2023, 1, 10, 8, 20))
    assert (row[schema.PU_ZONE], row[schema.PASSENGERS], row[schema.SOURCE_MONTH]) == (74, 2, None)


def test_json_events_with_tlc_names(runtime: Runtime, tmp_path: Path) -> None:
    (row,) = read(runtime, write_jsonl(tmp_path / "green_events.jsonl", [green_row()]))
    assert row == {**EXPECTED_GREEN, schema.SOURCE_FILE: "green_events.jsonl", schema.SOURCE_MONTH: None}


def test_canonical_types_are_the_same_for_every_variant(runtime: Runtime, tmp_path: Path) -> None:
    a = write_parquet(tmp_path / "green_tripdata_2022-12.parquet", [green_row()], ERA_A_TYPES)
    j = write_jsonl(tmp_path / "events.jsonl", [green_row()])
    for path in (a, j):
        types = read_trips(runtime, check_all([path])).collect_schema()
        assert dict(types) == {c.name: c.dtype for c in schema.COLUMNS}
        assert types[schema.PICKUP] == nw.Datetime("us")
