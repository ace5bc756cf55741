"""Every validation rule: a row that breaks it, a row that does not; repairs; the same verdicts on every engine."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import narwhals as nw
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from taxi_duration.core import schema
from taxi_duration.core import schema as s
from taxi_duration.engines.frames import Runtime
from taxi_duration.ingest.inputs import check_all
from taxi_duration.ingest.readers import read_trips
from taxi_duration.ingest.validation import (
    BOOKING_OUT_OF_RANGE,
    DISTANCE_BOUND,
    FIRST_DAY,
    POSITIVE_DISTANCE,
    REPAIRS_COL,
    RULE_CODES,
    booking_window,
    flag,
    last_day,
    missing,
    pickup_window,
    request_problems,
    split_codes,
    trip_problems,
)
from tests.conftest import ALL_ENGINES, CASES, FAST_ENGINES, all_cases, timed_trip, write_parquet


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
    rows = [timed_trip(), timed_trip(), timed_trip(), timed_trip(fare_amount=99.0)]
    result = flagged_rows(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", rows))
    reasons = [r[schema.REASONS] for r in result]
    assert sorted(r or "" for r in reasons) == ["", "", "duplicate", "duplicate"]
    assert [r[schema.FARE] for r, why in zip(result, reasons, strict=True) if why is None] == [14.2, 99.0]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_duplicates_with_nulls_in_the_same_places_are_duplicates(runtime: Runtime, tmp_path: Path) -> None:
    rows = [timed_trip(VendorID=None, passenger_count=None)] * 2
    result = flagged_rows(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", rows))
    assert sorted(r[schema.REASONS] or "" for r in result) == ["", "duplicate"]


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_only_exact_copies_are_duplicates_across_files(runtime: Runtime, tmp_path: Path) -> None:
    """Copies are found by a hash of the trip fields, then numbered by the fields themselves: two exact copies
    in two files, copies with nulls (and NaN) in the same places are duplicates; a trip differing in one field
    (the zones too, which the hash leaves out), or with a value where its copy has a null, is not."""
    copied, nulls, nan = timed_trip(), timed_trip(VendorID=None, passenger_count=None), timed_trip(trip_distance=np.nan)
    first = [copied, timed_trip(fare_amount=99.0), timed_trip(DOLocationID=76), nulls, nan]
    first.append(timed_trip(VendorID=None, passenger_count=1))
    paths = [
        write_parquet(tmp_path / "green_tripdata_2023-01.parquet", first),
        write_parquet(tmp_path / "green_tripdata_2023-02.parquet", [copied, nulls, nan]),
    ]
    rows = flag(runtime, read_trips(runtime, check_all(paths))).collect().to_arrow().to_pylist()
    copies = [r for r in rows if "duplicate" in split_codes(r[schema.REASONS])]
    assert len(rows) == 9
    assert sorted((r[schema.FARE], r[schema.VENDOR] or 0, math.isnan(r[schema.DISTANCE])) for r in copies) == [
        (14.2, 0, False),
        (14.2, 2, False),
        (14.2, 2, True),
    ]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_a_row_carries_every_reason_it_breaks(runtime: Runtime, tmp_path: Path) -> None:
    row = timed_trip(minutes=-5, trip_distance=0.0, DOLocationID=265, fare_amount=-2.0)
    (result,) = flagged_rows(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", [row]))
    assert result[schema.REASONS].split(",") == [
        "dropoff_before_pickup",
        "unknown_zone",
        "non_positive_distance",
        "negative_fare",
    ]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_missing_or_zero_passengers_are_repaired_and_stay_clean(runtime: Runtime, tmp_path: Path) -> None:
    rows = [
        timed_trip(passenger_count=None),
        timed_trip(minutes=16, passenger_count=0),
        timed_trip(minutes=17, passenger_count=3),
    ]
    result = flagged_rows(runtime, write_parquet(tmp_path / "green_tripdata_2023-01.parquet", rows))
    assert [r[schema.PASSENGERS] for r in result] == [1, 1, 3]
    assert [r[REPAIRS_COL] for r in result] == ["passenger_count_defaulted", "passenger_count_defaulted", None]
    assert [r[schema.REASONS] for r in result] == [None, None, None]


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_files_without_a_month_in_their_name_skip_the_month_rule(runtime: Runtime, tmp_path: Path) -> None:
    row = timed_trip(lpep_pickup_datetime=datetime(2019, 5, 5, 8), lpep_dropoff_datetime=datetime(2019, 5, 5, 8, 20))
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
    rows = [timed_trip(lpep_pickup_datetime=p, lpep_dropoff_datetime=p + timedelta(minutes=15)) for p in pickups]
    result = flagged_rows(runtime, write_parquet(tmp_path / "trips.parquet", rows))  # no month in the name
    assert [(r[schema.PICKUP], r[schema.REASONS]) for r in result] == sorted(pickups.items())


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_every_engine_gives_every_row_the_same_verdict(runtime: Runtime, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", all_cases())
    verdicts = sorted((r[schema.REASONS] or "", r[REPAIRS_COL] or "") for r in flagged_rows(runtime, path))
    expected = sorted([(code, "") for code in CASES] + [("", "")] * (len(CASES) + 1) + [("duplicate", "")])
    assert verdicts == expected


def test_a_trip_request_is_held_to_the_rules_a_request_can_break() -> None:
    now = datetime.now()
    columns = {
        s.PICKUP: np.array([now, now, datetime(2008, 12, 31), now + timedelta(days=400), now], "datetime64[us]"),
        s.PU_ZONE: [74.0, None, 74.0, 74.0, 265.0],
        s.DO_ZONE: [75.0, 75.0, 75.0, 75.0, 75.0],
        s.DISTANCE: [2.0, 2.0, np.nan, 2.0, 0.0],
        s.PASSENGERS: [1.0, 1.0, 1.0, 1.0, 12.0],
    }
    required = [s.PICKUP, *s.ZONES, s.DISTANCE]
    assert request_problems(columns, required) == [
        None,
        missing(s.PU_ZONE),
        f"{missing(s.DISTANCE)},pickup_out_of_range",
        "pickup_out_of_range",
        "unknown_zone,non_positive_distance,bad_passenger_count",
    ]
    assert request_problems(columns, required[:-1])[2] == "pickup_out_of_range"  # a pretrip model needs no distance
    trips = [
        {c: (v.item() if isinstance(v, np.datetime64) else None if v is None or v != v else v) for c, v in row.items()}
        for row in pd.DataFrame(columns).astype(object).to_dict("records")
    ]
    assert trip_problems(trips, required) == request_problems(columns, required)  # the API's way, one at a time


def test_a_bound_gives_the_same_answer_as_a_rule_and_as_a_request_check() -> None:
    values = {s.DISTANCE: [-1.0, 0.0, 0.01, 100.0, 100.5, None]}
    frame = nw.from_native(pa.table(values), eager_only=True)
    for bound in (POSITIVE_DISTANCE, DISTANCE_BOUND):
        by_rule = frame.select(bound.broken().fill_null(False).alias("x"))["x"].to_list()
        assert by_rule == bound.broken_values(values).tolist()
    assert POSITIVE_DISTANCE.broken_values(values).tolist() == [True, True, False, False, False, False]


# New York's calendar day at instants around its midnights, on the two DST change days of 2024: 2024-03-10 has
# 23 hours (midnight after it is 04:00 UTC), 2024-11-03 has 25 (midnight after it is 05:00 UTC).
NEW_YORK_DAYS = [
    (datetime(2024, 3, 10, 4, 59, 59, tzinfo=UTC), date(2024, 3, 9)),
    (datetime(2024, 3, 10, 5, 0, tzinfo=UTC), date(2024, 3, 10)),
    (datetime(2024, 3, 11, 3, 59, 59, tzinfo=UTC), date(2024, 3, 10)),
    (datetime(2024, 3, 11, 4, 0, tzinfo=UTC), date(2024, 3, 11)),
    (datetime(2024, 11, 4, 4, 59, 59, tzinfo=UTC), date(2024, 11, 3)),
    (datetime(2024, 11, 4, 5, 0, tzinfo=UTC), date(2024, 11, 4)),
]


@pytest.mark.parametrize(("now", "today"), NEW_YORK_DAYS)
def test_the_pickup_window_counts_from_new_yorks_day_whatever_zone_the_clock_is_read_in(
    now: datetime, today: date
) -> None:
    for seen_from in ("UTC", "Asia/Tokyo", "Pacific/Kiritimati", "America/Los_Angeles"):
        local = now.astimezone(ZoneInfo(seen_from))
        assert booking_window(local).first == FIRST_DAY
        assert booking_window(local).last == today + timedelta(days=366), seen_from
        assert last_day(local) == today + timedelta(days=1), seen_from
        assert pickup_window(timedelta(hours=30), local).last == today + timedelta(days=1)  # whole days only


def test_a_request_may_be_picked_up_until_the_end_of_the_windows_last_day() -> None:
    window = booking_window()
    first = datetime.combine(window.first, datetime.min.time())
    last = datetime.combine(window.last, datetime.max.time())
    pickups = [first - timedelta(microseconds=1), first, last, last + timedelta(microseconds=1)]
    trips = [{s.PICKUP: p, s.PU_ZONE: 74, s.DO_ZONE: 75} for p in pickups]
    assert trip_problems(trips, [s.PICKUP, *s.ZONES]) == [BOOKING_OUT_OF_RANGE, None, None, BOOKING_OUT_OF_RANGE]
    columns = {s.PICKUP: np.array(pickups, "datetime64[us]"), s.PU_ZONE: [74.0] * 4, s.DO_ZONE: [75.0] * 4}
    columns |= {s.DISTANCE: [np.nan] * 4, s.PASSENGERS: [np.nan] * 4}
    assert request_problems(columns, [s.PICKUP, *s.ZONES]) == trip_problems(trips, [s.PICKUP, *s.ZONES])
