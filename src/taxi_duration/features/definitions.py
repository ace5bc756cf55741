"""Every model feature, defined once as a narwhals expression over the canonical trip table.

The batch paths (pandas, DuckDB, Spark) and the online path (`online.py`: one trip as a dict, evaluated on
a one-row Arrow table) all call `add_features`, so a feature cannot mean one thing in training and another in
serving. Two named feature sets say what a model may know: `pretrip` (what is known when the ride is
booked) and `with_distance` (adds the metered distance, as the well-known course baselines do).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import holidays
import narwhals as nw
import pyarrow as pa
import pyarrow.json as pa_json
from narwhals.dtypes import DType

from taxi_duration.core import schema as s
from taxi_duration.core.config import FeatureSet
from taxi_duration.engines.frames import Runtime, with_math
from taxi_duration.geo.zones import AIRPORT_ZONES, UNKNOWN_BOROUGH, boroughs, centroids

TARGET = "duration_min"
# The trips every model learns from and is judged on: the course's 1-60 minute window, so that our models
# and the baselines are scored on the very same rows. Longer clean trips stay in the validated output.
TARGET_RANGE = (1.0, 60.0)
HOLIDAY_YEARS = range(2009, 2036)
PICKUP_GRAIN = "hour"  # no feature reads the pickup finer than its hour


@dataclass(frozen=True)
class Feature:
    """One model input: its name, type, whether models should treat it as a category, and its definition."""

    name: str
    dtype: DType
    categorical: bool
    expr: Callable[[], nw.Expr]
    doc: str
    # Reads other features by name (computed first) rather than recomputing them: the weekday fix-up and
    # the borough strings are built once per row, not once per feature that uses them.
    derived: bool = False
    # The canonical trip columns the value depends on (the pickup only to the hour: `PICKUP_GRAIN`). The
    # online path caches each feature by these inputs; a test with random minutes and zones holds it to that.
    reads: tuple[str, ...] = ()


def _weekday() -> nw.Expr:
    # ISO: Monday 1 .. Sunday 7. narwhals' Spark backend returns 0 for Sunday; the parity test caught it.
    wd = nw.col(s.PICKUP).dt.weekday()
    return nw.when(wd == 0).then(nw.lit(7)).otherwise(wd)


def _day_key() -> nw.Expr:
    pickup = nw.col(s.PICKUP)
    return pickup.dt.year() * 10_000 + pickup.dt.month() * 100 + pickup.dt.day()


@cache
def holiday_keys() -> tuple[int, ...]:
    """US federal holidays (observed dates included) as YYYYMMDD integers."""
    days: list[date] = list(holidays.country_holidays("US", years=HOLIDAY_YEARS))
    return tuple(sorted(d.year * 10_000 + d.month * 100 + d.day for d in days))


# Boroughs and zone centroids come from joining the zone table (`zones` below): a hash join against 265
# rows. A mapping expression was 3x slower on Spark, whose map lookups scan every key for every row.
_PU_BOROUGH, _DO_BOROUGH = "_pu_borough", "_do_borough"
# Feature names other stages read by name (metrics, drift, the store, the online path): each written once.
PICKUP_HOUR, PICKUP_WEEKDAY = "pickup_hour", "pickup_weekday"
PU_BOROUGH = "pu_borough"  # the feature metrics are broken down by, and intervals binned by
DO_BOROUGH = "do_borough"
_JOINED = {
    s.PU_ZONE: {"borough": _PU_BOROUGH, "lon": "_pu_zone_lon", "lat": "_pu_zone_lat"},
    s.DO_ZONE: {"borough": _DO_BOROUGH, "lon": "_do_zone_lon", "lat": "_do_zone_lat"},
}

# Geometry. narwhals has sin, cos and sqrt on every engine but no arcsin or arctan2: those two are each
# engine's own (`engines.with_math`), on helper columns computed first.
EARTH_RADIUS_MI = 3958.7613  # the mean radius (IUGG), 6371.0088 km
MANHATTAN_GRID_DEG = 29.0  # Manhattan's avenues run 29 degrees east of true north
_RADIANS = math.pi / 180


# Helper columns, computed once per row before the features that read them (an expression tree that
# repeats them would be rebuilt at every use, which costs the one-row online path milliseconds).
_PU_LON, _PU_LAT, _DO_LON, _DO_LAT, _EAST, _NORTH = "_pu_lon", "_pu_lat", "_do_lon", "_do_lat", "_east_mi", "_north_mi"
_HALF_CHORD, _ARC, _HEADING = "_half_chord", "_arc", "_heading"  # the haversine's sqrt(a) and arcsin; atan2(E, N)
# The two functions narwhals lacks, each engine's own (`with_math`): the central angle over two, in radians, and
# the heading from north toward east, -pi..pi.
_ANGLES = {_ARC: ("asin", (_HALF_CHORD,)), _HEADING: ("atan2", (_EAST, _NORTH))}


def _geometry_columns() -> list[list[nw.Expr]]:
    """Steps of helper columns, each reading the ones before: the trip's end points (its coordinates, else its
    zones' centroids); the dropoff's offset in miles east and north on the plane tangent at the trip's mean
    latitude, and the haversine's sqrt(a) (at most 1: rounding may pass it at antipodes)."""
    points = [
        nw.coalesce(nw.col(coordinate), nw.col(_JOINED[zone][axis])).alias(name)
        for name, coordinate, zone, axis in (
            (_PU_LON, s.PU_LON, s.PU_ZONE, "lon"),
            (_PU_LAT, s.PU_LAT, s.PU_ZONE, "lat"),
            (_DO_LON, s.DO_LON, s.DO_ZONE, "lon"),
            (_DO_LAT, s.DO_LAT, s.DO_ZONE, "lat"),
        )
    ]
    mean_lat = (nw.col(_PU_LAT) + nw.col(_DO_LAT)) * (_RADIANS / 2)
    offsets = [
        ((nw.col(_DO_LON) - nw.col(_PU_LON)) * _RADIANS * mean_lat.cos() * EARTH_RADIUS_MI).alias(_EAST),
        ((nw.col(_DO_LAT) - nw.col(_PU_LAT)) * _RADIANS * EARTH_RADIUS_MI).alias(_NORTH),
    ]
    lon1, lat1, lon2, lat2 = (nw.col(c) for c in (_PU_LON, _PU_LAT, _DO_LON, _DO_LAT))
    half_dlat, half_dlon = (lat2 - lat1) * (_RADIANS / 2), (lon2 - lon1) * (_RADIANS / 2)
    a = half_dlat.sin() ** 2 + (lat1 * _RADIANS).cos() * (lat2 * _RADIANS).cos() * half_dlon.sin() ** 2
    return [points, [*offsets, a.sqrt().clip(upper_bound=1.0).alias(_HALF_CHORD)]]


NO_POINT = -1.0  # a trip in zone 264 or 265 without coordinates has no point to measure from


def _or_no_point(expr: nw.Expr) -> nw.Expr:
    # A number, not a null: linear models (Spark's) cannot take a missing value, and trees split it off.
    return nw.when(nw.col(_EAST).is_null()).then(nw.lit(NO_POINT)).otherwise(expr)


def _haversine_mi() -> nw.Expr:
    return _or_no_point(2 * EARTH_RADIUS_MI * nw.col(_ARC))


def _manhattan_mi() -> nw.Expr:
    east, north = nw.col(_EAST), nw.col(_NORTH)
    sin_g, cos_g = math.sin(MANHATTAN_GRID_DEG * _RADIANS), math.cos(MANHATTAN_GRID_DEG * _RADIANS)
    return _or_no_point((east * sin_g + north * cos_g).abs() + (east * cos_g - north * sin_g).abs())


def _bearing_deg() -> nw.Expr:
    """Compass bearing from pickup to dropoff, 0-360 (0 north, 90 east)."""
    degrees = nw.col(_HEADING) / _RADIANS
    return _or_no_point(nw.when(degrees < 0).then(degrees + 360).otherwise(degrees))


def _borough(joined: str) -> nw.Expr:
    return nw.col(joined).fill_null(nw.lit(UNKNOWN_BOROUGH))


def _flag(condition: nw.Expr) -> nw.Expr:
    return nw.when(condition).then(nw.lit(1)).otherwise(nw.lit(0))


def _joined(*parts: nw.Expr) -> nw.Expr:
    return nw.concat_str([p.cast(nw.String()) for p in parts], separator="-")


TIME, ZONES = (s.PICKUP,), (s.PU_ZONE, s.DO_ZONE)
GEOMETRY = (*ZONES, *s.COORDINATES)
# Stands in for the metered distance where a data set has none (Kaggle): in store speeds and the course.
STRAIGHT_MILES, GRID_MILES, BEARING = "haversine_mi", "manhattan_mi", "bearing_deg"
# A trip's miles, the first of these a trip has: metered, else the straight line, as the course does. The
# store's speeds and the course baseline read it as `trip_miles()`; the Spark course pipeline as
# `TRIP_MILES_SQL`, since a saved MLlib pipeline holds SQL, not expressions.
_MILES_FROM = (s.DISTANCE, STRAIGHT_MILES)
TRIP_MILES_SQL = f"coalesce({', '.join(_MILES_FROM)})"
FEATURES: tuple[Feature, ...] = (
    Feature(PICKUP_HOUR, nw.Int32(), False, lambda: nw.col(s.PICKUP).dt.hour(), "hour of pickup, 0-23", reads=TIME),
    Feature(PICKUP_WEEKDAY, nw.Int32(), False, _weekday, "ISO day of week of pickup, Monday 1 .. Sunday 7", reads=TIME),
    Feature(
        "is_weekend",
        nw.Int32(),
        False,
        lambda: _flag(nw.col(PICKUP_WEEKDAY) >= 6),
        "1 on Saturday and Sunday",
        True,
        TIME,
    ),
    Feature(
        "pickup_month", nw.Int32(), False, lambda: nw.col(s.PICKUP).dt.month(), "month of pickup, 1-12", reads=TIME
    ),
    Feature(
        "is_holiday",
        nw.Int32(),
        False,
        lambda: _flag(_day_key().is_in(holiday_keys())),
        "1 on US federal holidays",
        reads=TIME,
    ),
    Feature(
        "hour_of_week",
        nw.Int32(),
        False,
        lambda: (nw.col(PICKUP_WEEKDAY) - 1) * 24 + nw.col(PICKUP_HOUR),
        "hours since Monday 00:00, 0-167",
        True,
        TIME,
    ),
    Feature(s.PU_ZONE, nw.Int32(), True, lambda: nw.col(s.PU_ZONE), "pickup zone", reads=ZONES),
    Feature(s.DO_ZONE, nw.Int32(), True, lambda: nw.col(s.DO_ZONE), "dropoff zone", reads=ZONES),
    Feature(
        "zone_pair", nw.String(), True, lambda: _joined(nw.col(s.PU_ZONE), nw.col(s.DO_ZONE)), "'PU-DO'", reads=ZONES
    ),
    Feature(PU_BOROUGH, nw.String(), True, lambda: _borough(_PU_BOROUGH), "borough of the pickup zone", reads=ZONES),
    Feature(DO_BOROUGH, nw.String(), True, lambda: _borough(_DO_BOROUGH), "borough of the dropoff zone", reads=ZONES),
    Feature(
        "borough_pair",
        nw.String(),
        True,
        lambda: _joined(nw.col(PU_BOROUGH), nw.col(DO_BOROUGH)),
        "'pickup borough-dropoff borough'",
        True,
        ZONES,
    ),
    Feature(
        "pu_airport",
        nw.Int32(),
        False,
        lambda: _flag(nw.col(s.PU_ZONE).is_in(AIRPORT_ZONES)),
        "pickup at JFK/LGA/EWR",
        reads=ZONES,
    ),
    Feature(
        "do_airport",
        nw.Int32(),
        False,
        lambda: _flag(nw.col(s.DO_ZONE).is_in(AIRPORT_ZONES)),
        "dropoff at an airport",
        reads=ZONES,
    ),
    Feature(
        STRAIGHT_MILES,
        nw.Float64(),
        False,
        _haversine_mi,
        "great-circle miles pickup to dropoff (coordinates, else zone centroids): known at booking",
        reads=GEOMETRY,
    ),
    Feature(
        GRID_MILES,
        nw.Float64(),
        False,
        _manhattan_mi,
        "miles along Manhattan's street grid (29 degrees off north), same points",
        reads=GEOMETRY,
    ),
    Feature(
        BEARING,
        nw.Float64(),
        False,
        _bearing_deg,
        "compass bearing, 0 north, 90 east; all three -1 without a point (zone 264/265)",
        reads=GEOMETRY,
    ),
    Feature(
        s.PASSENGERS,
        nw.Int32(),
        False,
        lambda: nw.col(s.PASSENGERS),
        "passengers (after repair)",
        reads=(s.PASSENGERS,),
    ),
    Feature(
        s.VENDOR,
        nw.Int32(),
        True,
        lambda: nw.col(s.VENDOR).fill_null(0),
        "technology provider, 0 if unknown",
        reads=(s.VENDOR,),
    ),
    Feature(
        s.DISTANCE,
        nw.Float64(),
        False,
        lambda: nw.col(s.DISTANCE),
        "metered miles: known only after the trip",
        reads=(s.DISTANCE,),
    ),
)
BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}

FEATURE_SETS: dict[FeatureSet, tuple[str, ...]] = {
    FeatureSet.PRETRIP: tuple(f.name for f in FEATURES if f.name != s.DISTANCE),
    FeatureSet.WITH_DISTANCE: tuple(f.name for f in FEATURES),
}


_ZONE_SCHEMA = pa.schema([("zone", pa.int32()), ("borough", pa.string()), ("lon", pa.float64()), ("lat", pa.float64())])


def zone_table() -> pa.Table:
    """Zone id -> borough and centroid (longitude, latitude), as the table `add_features` joins."""
    table, points = boroughs(), centroids()
    rows = (
        json.dumps({"zone": zone, "borough": borough, "lon": lon, "lat": lat})
        for zone, borough in table.items()
        for lon, lat in [points.get(zone, (None, None))]
    )
    # Through Arrow's JSON reader: building arrays from Python objects imports pandas, 0.25 s of every
    # validate run, which needs pandas nowhere else.
    return pa_json.read_json(
        io.BytesIO("\n".join(rows).encode()), parse_options=pa_json.ParseOptions(explicit_schema=_ZONE_SCHEMA)
    )


def add_features(frame: Any, zones: Any, keep: tuple[str, ...] = ()) -> Any:
    """Every feature of `FEATURES` computed from canonical trip columns, plus the columns in `keep`.

    `zones` is `zone_table()` on the frame's own engine (`Runtime.from_arrow`, or the Arrow table itself
    for an eager Arrow frame).
    """
    kept = [c for c in keep if c not in BY_NAME]
    for zone, joined in _JOINED.items():
        frame = frame.join(zones.rename({"zone": zone, **joined}), on=zone, how="left")
    for step in _geometry_columns():
        frame = frame.with_columns(*step)
    frame = with_math(frame, _ANGLES)
    base = frame.select(*kept, *(f.expr().cast(f.dtype).alias(f.name) for f in FEATURES if not f.derived))
    derived = base.with_columns(*(f.expr().cast(f.dtype).alias(f.name) for f in FEATURES if f.derived))
    return derived.select(*kept, *BY_NAME)


def featurize(runtime: Runtime, trips: nw.LazyFrame[Any], keep: tuple[str, ...] = ()) -> nw.LazyFrame[Any]:
    """Clean canonical trips -> features and the target (and the columns in `keep`): the batch path."""
    zones = runtime.from_arrow(zone_table())
    return add_features(add_target(runtime, trips), zones, keep=(*keep, TARGET))


def trip_miles() -> nw.Expr:
    """A trip's miles: metered, else the straight line (`_MILES_FROM`; `TRIP_MILES_SQL` is the same in SQL)."""
    return nw.coalesce(*(nw.col(c) for c in _MILES_FROM))


def in_target_range() -> nw.Expr:
    """True for trips inside `TARGET_RANGE` (ends included)."""
    return nw.col(TARGET).is_between(*TARGET_RANGE, closed="both")


def add_target(runtime: Runtime, frame: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Add the label: trip duration in minutes."""
    seconds = "_duration_s"
    frame = runtime.seconds_between(frame, s.PICKUP, s.DROPOFF, seconds)
    return frame.with_columns((nw.col(seconds) / 60.0).alias(TARGET)).drop(seconds)
