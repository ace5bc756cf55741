"""Every validation rule: a row that breaks it, a row that does not; repairs; the same verdicts on every engine."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taxi_duration import schema
from taxi_duration.engines import Runtime
from taxi_duration.inputs import check_all
from taxi_duration.readers import read_trips
from taxi_duration.validation import FIRST_DAY, REPAIRS_COL, RULE_CODES, flag, last_day
from tests.conftest import ALL_ENGINES, FAST_ENGINES, green_row, write_parquet

PICKUP = datetime(2023, 1, 10, 8, 0)


def trip(minutes: float = 15, **overrides: Any) -> dict[str, Any]:
    """A green trip starting at PICKUP that lasts `minutes`."""
    row = green_row(lpep_pickup_datetime=PICKUP, lpep_dropoff_datetime=PICKUP + timedelta(minutes=minutes))
    row.update(overrides)
    return row


# code -> (a row that breaks only that rule, a row that is close to it but clean)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "missing_required": (trip(PULocationID=None), trip(VendorID=None, fare_amount=None)),
    "dropoff_before_pickup": (trip(minutes=-1), trip(minutes=1, trip_distance=0.3)),
    "duration_too_short": (trip(minutes=0.5, trip_distance=0.1), trip(minutes=1, trip_distance=0.3)),
    "duration_too_long": (trip(minutes=6 * 60), trip(minutes=5 * 60 - 1)),
    "pickup_outside_month": (
        trip(lpep_pickup_datetime=datetime(2022, 12, 31, 23, 50), lpep_dropoff_datetime=datetime(2023, 1, 1, 0, 5)),
        trip(lpep_pickup_datetime=datetime(2023, 1, 31, 23, 50), lpep_dropoff_datetime=datetime(2023, 2, 1, 0, 5)),
    ),
    "unknown_zone": (trip(DOLocationID=264), trip(DOLocationID=263, PULocationID=1)),
    "non_positive_distance": (trip(trip_distance=0.0), trip(trip_distance=0.01)),
    "huge_distance": (trip(minutes=4 * 60, trip_distance=150.0), trip(minutes=4 * 60, trip_distance=99.0)),
    "impossible_speed": (trip(minutes=15, trip_distance=30.0), trip(minutes=15, trip_distance=15.0)),
    "bad_passenger_count": (trip(passenger_count=10), trip(passenger_count=9)),
    "negative_fare": (trip(fare_amount=-5.0), trip(fare_amount=0.0)),
}


def flagged_rows(runtime: Runtime, path: Path) -> list[dict[str, Any]]:
    frame = flag(runtime, read_trips(runtime, check_all([path])))
    return frame.sort(schema.PICKUP, schema.DROPOFF, schema.FARE).collect().to_arrow().to_pylist()


def test_every_rule_has_a_case() -> None:
    assert set(CASES) | {"duplicate", "pickup_out_of_range"} == set(RULE_CODES)


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_flags_the_breaking_row_and_only_it(runtime: Runtime, tmp_path: Path, code: str) -> None:
    bad, good = CASES[code]
    path = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [bad, good])
    rows = flagged_rows(runtime, path)
    by_reason = sorted((r[schema.REASONS] or "") for r in rows)
    assert by_reason == ["", code]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_duplicate_keeps_the_first_copy(runtime: Runtime, tmp_path: Path) -> None:
    rows = [trip(), trip(), trip(), trip(fare_amount=99.0)]
    result = flagged_rows(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", rows))
    reasons = [r[schema.REASONS] for r in result]
    assert sorted(r or "" for r in reasons) == ["", "", "duplicate", "duplicate"]
    assert [r[schema.FARE] for r, why in zip(result, reasons, strict=True) if why is None] == [14.2, 99.0]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_duplicates_with_nulls_in_the_same_places_are_duplicates(runtime: Runtime, tmp_path: Path) -> None:
    rows = [trip(VendorID=None, passenger_count=None)] * 2
    result = flagged_rows(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", rows))
    assert sorted(r[schema.REASONS] or "" for r in result) == ["", "duplicate"]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_a_row_carries_every_reason_it_breaks(runtime: Runtime, tmp_path: Path) -> None:
    row = trip(minutes=-5, trip_distance=0.0, DOLocationID=265, fare_amount=-2.0)
    (result,) = flagged_rows(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [row]))
    assert result[schema.REASONS].split(",") == [
        "dropoff_before_pickup",
        "unknown_zone",
        "non_positive_distance",
        "negative_fare",
    ]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_missing_or_zero_passengers_are_repaired_and_stay_clean(runtime: Runtime, tmp_path: Path) -> None:
    rows = [trip(passenger_count=None), trip(minutes=16, passenger_count=0), trip(minutes=17, passenger_count=3)]
    result = flagged_rows(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", rows))
    assert [r[schema.PASSENGERS] for r in result] == [1, 1, 3]
    assert [r[REPAIRS_COL] for r in result] == ["passenger_count_defaulted", "passenger_count_defaulted", None]
    assert [r[schema.REASONS] for r in result] == [None, None, None]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_files_without_a_month_in_their_name_skip_the_month_rule(runtime: Runtime, tmp_path: Path) -> None:
    row = trip(lpep_pickup_datetime=datetime(2019, 5, 5, 8), lpep_dropoff_datetime=datetime(2019, 5, 5, 8, 20))
    (result,) = flagged_rows(runtime, write_parquet(tmp_path / "trips.parquet", [row]))
    assert result[schema.REASONS] is None


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_pickups_before_the_tlc_or_in_the_future_are_out_of_range(runtime: Runtime, tmp_path: Path) -> None:
    first = datetime.combine(FIRST_DAY, datetime.min.time())
    end_of_last_day = datetime.combine(last_day(), datetime.max.time()).replace(microsecond=0)
    pickups = {
        first - timedelta(seconds=1): "pickup_out_of_range",
        first: None,
        end_of_last_day: None,
        end_of_last_day + timedelta(seconds=1): "pickup_out_of_range",
        datetime(2099, 6, 1, 8): "pickup_out_of_range",
        datetime(1970, 1, 1): "pickup_out_of_range",
    }
    rows = [trip(lpep_pickup_datetime=p, lpep_dropoff_datetime=p + timedelta(minutes=15)) for p in pickups]
    result = flagged_rows(runtime, write_parquet(tmp_path / "trips.parquet", rows))  # no month in the name
    assert [(r[schema.PICKUP], r[schema.REASONS]) for r in result] == sorted(pickups.items())


def all_cases() -> list[dict[str, Any]]:
    """Every case in one file; the rate code (no rule reads it) keeps similar clean rows from being copies."""
    rows = [{**row, "RatecodeID": i} for i, row in enumerate(row for pair in CASES.values() for row in pair)]
    return [*rows, trip(minutes=33), trip(minutes=33)]  # and one duplicate


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_every_engine_gives_every_row_the_same_verdict(runtime: Runtime, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", all_cases())
    verdicts = sorted((r[schema.REASONS] or "", r[REPAIRS_COL] or "") for r in flagged_rows(runtime, path))
    expected = sorted([(code, "") for code in CASES] + [("", "")] * (len(CASES) + 1) + [("duplicate", "")])
    assert verdicts == expected
