"""One parity test for every feature: pandas, DuckDB, Spark and the online path give the same values."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import narwhals as nw
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from taxi_duration.core import schema as s
from taxi_duration.core.config import Engine, FeatureSet, load_settings
from taxi_duration.core.months import Month
from taxi_duration.engines.frames import Runtime
from taxi_duration.features import store as fs
from taxi_duration.features.definitions import (
    BY_NAME,
    FEATURE_SETS,
    FEATURES,
    STRAIGHT_MILES,
    TARGET,
    TRIP_MILES_SQL,
    in_target_range,
    trip_miles,
)
from taxi_duration.serve.online import FastFeatures, features_table, trips_table
from tests.conftest import ALL_ENGINES, feature_trips, featurized, green_row, online_features, write_parquet

FEATURE_NAMES = tuple(f.name for f in FEATURES)
ALL_NAMES = (*FEATURE_NAMES, *fs.STORE_FEATURES)


@pytest.fixture(scope="module")
def january(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet(tmp_path_factory.mktemp("jan") / "green_tripdata_2023-01.parquet", feature_trips())


@pytest.fixture(scope="module")
def february(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same trips a month later: outside the store's window, like requests to the API."""
    return write_parquet(
        tmp_path_factory.mktemp("feb") / "green_tripdata_2023-02.parquet", feature_trips(timedelta(days=31))
    )


@pytest.fixture(scope="module")
def store(january: Path, tmp_path_factory: pytest.TempPathFactory) -> fs.FeatureStore:
    runtime = Runtime.open(load_settings(), Engine.DUCKDB)
    return fs.build(
        runtime, featurized(runtime, january), Month(2023, 1), Month(2023, 1), tmp_path_factory.mktemp("fs")
    )


def assert_same(batch: list[dict[str, Any]], online: list[dict[str, Any]], names: tuple[str, ...]) -> None:
    assert len(batch) == len(online) > 0
    for b, o in zip(batch, online, strict=True):
        for name in names:
            x, y = b[name], o[name]
            if isinstance(x, float) or isinstance(y, float):
                assert math.isclose(x, y, rel_tol=0, abs_tol=1e-9), (name, x, y)
            else:
                assert x == y, (name, x, y)
                assert type(x) is type(y), (name, x, y)


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_every_feature_is_the_same_on_every_engine_and_online(
    runtime: Runtime, february: Path, store: fs.FeatureStore
) -> None:
    frame = fs.attach(featurized(runtime, february), store, store.tables(runtime))
    batch = frame.sort(s.PICKUP).collect().to_arrow().to_pylist()
    online = [online_features(trip, store) for trip in feature_trips(timedelta(days=31))]
    assert_same(batch, online, (*FEATURE_NAMES, *fs.STORE_FEATURES))
    assert {r["fs_pair_level"] for r in batch} == {0, 1}
    fast = FastFeatures(store)
    assert_same(batch, [fast.one(canonical(trip)) for trip in feature_trips(timedelta(days=31))], ALL_NAMES)


def canonical(trip: dict[str, Any]) -> dict[str, Any]:
    """A TLC-named trip as the API hands it to the fast path."""
    names = {"lpep_pickup_datetime": s.PICKUP, "PULocationID": s.PU_ZONE, "DOLocationID": s.DO_ZONE}
    names |= {"passenger_count": s.PASSENGERS, "trip_distance": s.DISTANCE, "VendorID": s.VENDOR}
    return {new: trip[old] for old, new in names.items()}


def random_trips(n: int, seed: int) -> pd.DataFrame:
    """Trips at any minute of 2022-2024 (holidays, the store's own month included), any zones and inputs."""
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, 3 * 365 * 86_400, n)
    distance = np.round(rng.exponential(3.0, n), 2)
    return pd.DataFrame(
        {
            s.PICKUP: [datetime(2022, 1, 1) + timedelta(seconds=int(x)) for x in seconds],
            s.PU_ZONE: rng.integers(1, 266, n),
            s.DO_ZONE: rng.choice([74, 75, 41, 132, 236, *range(1, 266)], n),
            s.PASSENGERS: pd.Series(rng.integers(-1, 10, n), dtype="Int64").where(lambda x: x >= 0),
            s.DISTANCE: np.where(rng.random(n) < 0.05, np.nan, distance),
            s.VENDOR: pd.Series(rng.choice([-1, 1, 2, 6], n), dtype="Int64").where(lambda x: x >= 0),
            # Every other trip carries coordinates (the Kaggle and 2009-2016 kind).
            **{
                c: np.where(np.arange(n) % 2 == 0, np.nan, np.round(rng.uniform(*span, n), 6))
                for c, span in zip(s.COORDINATES, [(-74.1, -73.7), (40.55, 40.9)] * 2, strict=True)
            },
        }
    )


def test_the_fast_path_gives_what_the_definitions_give_on_random_trips(store: fs.FeatureStore) -> None:
    trips_ = random_trips(600, seed=11)
    known = trips_.index < 200  # pairs the store knows well
    trips_.loc[known, s.PU_ZONE] = [74, 132, 1, 138, 161, 236] * 33 + [74, 74]
    trips_.loc[known, s.DO_ZONE] = [75, 236, 132] * 66 + [75, 75]
    trips_.loc[[1, 3], [s.DO_LON, s.DO_LAT]] = trips_.loc[[1, 3], [s.PU_LON, s.PU_LAT]].to_numpy()  # not moving
    expected = features_table(trips_table(trips_), store).to_pylist()
    fast = FastFeatures(store)
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in trips_.to_dict("records")]
    got = [fast.one({**r, s.PICKUP: r[s.PICKUP].to_pydatetime()}) for r in rows]
    assert_same(expected, got, ALL_NAMES)
    assert {r["fs_pair_level"] for r in expected} >= {0, 3}  # known pairs and the global fallback both seen


def test_values_are_what_the_definitions_say() -> None:
    f = online_features(feature_trips()[0])  # Sunday 2023-01-01 00:30, New Year's Day, 74 -> 75, 0 passengers
    assert (f["pickup_weekday"], f["is_weekend"], f["is_holiday"], f["hour_of_week"]) == (7, 1, 1, 6 * 24)
    assert (f["zone_pair"], f["borough_pair"], f["pu_airport"], f["do_airport"]) == (
        "74-75",
        "Manhattan-Manhattan",
        0,
        0,
    )
    assert (f[s.PASSENGERS], f[s.VENDOR]) == (1, 0)  # 0 passengers repaired to 1; no vendor is 0
    jfk = online_features(green_row(PULocationID=132, DOLocationID=1))
    assert (jfk["pu_borough"], jfk["do_borough"], jfk["pu_airport"], jfk["do_airport"]) == ("Queens", "EWR", 1, 1)
    monday = online_features(green_row(lpep_pickup_datetime=datetime(2023, 1, 9, 0, 0)))
    assert (monday["pickup_weekday"], monday["hour_of_week"], monday["is_holiday"]) == (1, 0, 0)


def test_online_path_accepts_canonical_names_and_iso_text() -> None:
    tlc = online_features(green_row())
    canonical = online_features(
        {
            "pickup_datetime": "2023-01-10T08:00:00",
            "pu_location_id": 74,
            "do_location_id": 75,
            "passenger_count": 1,
            "trip_distance": 2.5,
            "vendor_id": 2,
        }
    )
    assert canonical == tlc


def test_feature_sets() -> None:
    assert set(FEATURE_SETS) == set(FeatureSet)  # every name the settings accept has its features
    assert s.DISTANCE not in FEATURE_SETS["pretrip"]
    assert set(FEATURE_SETS["with_distance"]) - set(FEATURE_SETS["pretrip"]) == {s.DISTANCE}
    assert all(name in BY_NAME for names in FEATURE_SETS.values() for name in names)


def test_the_target_range_keeps_one_to_sixty_minutes_ends_included() -> None:
    frame = nw.from_native(pa.table({TARGET: [0.5, 1.0, 60.0, 61.0]}))
    assert frame.filter(in_target_range())[TARGET].to_list() == [1.0, 60.0]


def test_trip_miles_are_metered_else_the_straight_line_in_expressions_and_in_sql() -> None:
    legs = pa.table({s.DISTANCE: [2.0, None, 0.0, None], STRAIGHT_MILES: [5.0, 3.0, 4.0, None]})
    expected = [2.0, 3.0, 0.0, None]
    assert nw.from_native(legs).select(trip_miles().alias("miles"))["miles"].to_list() == expected
    in_sql = duckdb.sql(f"SELECT {TRIP_MILES_SQL} AS miles FROM legs").fetchall()  # the Spark course's SQL
    assert [row[0] for row in in_sql] == expected
