"""The online path: trips as an API or a model receives them, to the same features the batch paths compute.

It runs the very expressions of `features.py` and `feature_store.py` on an in-memory Arrow table (one row
for one request, a batch for a model's `predict`), so the parity test compares one implementation with
itself on different engines, not two implementations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, cast

import narwhals as nw
import pandas as pd
import pyarrow as pa

from taxi_duration.core import schema as s
from taxi_duration.engines.frames import arrow_type
from taxi_duration.features import store as fs
from taxi_duration.features.definitions import (
    BEARING,
    EARTH_RADIUS_MI,
    FEATURES,
    GEOMETRY,
    GRID_MILES,
    HOLIDAY_YEARS,
    MANHATTAN_GRID_DEG,
    STRAIGHT_MILES,
    add_features,
    holiday_keys,
    zone_table,
)
from taxi_duration.ingest.validation import apply_repairs


def trips_table(trips: pd.DataFrame | pa.Table) -> pa.Table:
    """Trips (canonical or TLC column names) as a canonical Arrow table; absent columns are nulls.

    Times are read by `new_york_times`."""
    if isinstance(trips, pa.Table):
        trips = trips.to_pandas()
    found = s.resolve_aliases(list(trips.columns))
    columns = {}
    for col in s.COLUMNS:
        values = trips[found[col.name]] if col.name in found else pd.Series([None] * len(trips), dtype=object)
        if col.dtype == nw.Datetime:
            values = new_york_times(values)
        columns[col.name] = pa.array(values, type=arrow_type(col.dtype), from_pandas=True)
    return pa.table(columns)


_ZONED = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")  # an ISO time that names its offset


def new_york_times(values: pd.Series) -> pd.Series:
    """Times as New York wall-clock time (`schema.TIME_ZONE`), as TLC files hold them: a time with an offset
    (ISO text, or a zoned value) is converted, one without is taken as is, and what is no time (`2023-02-30`,
    `soon`) is null, for the scorer to refuse by name. Naive and zoned times may be mixed."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert(s.TIME_ZONE).dt.tz_localize(None)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return values
    values = values.astype(object)
    zoned = values.map(
        lambda v: _ZONED.search(v.strip()) is not None if isinstance(v, str) else getattr(v, "tzinfo", None) is not None
    ).astype(bool)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us]")
    if (~zoned).any():
        out[~zoned] = pd.to_datetime(values[~zoned], format="ISO8601", errors="coerce")
    if zoned.any():
        aware = pd.to_datetime(values[zoned], format="ISO8601", errors="coerce", utc=True)
        out[zoned] = aware.dt.tz_convert(s.TIME_ZONE).dt.tz_localize(None)
    return out


_ORDER = "_row"  # joins may reorder rows; predictions must come back in the caller's order


@cache
def _zones() -> nw.DataFrame[Any]:
    return nw.from_native(zone_table(), eager_only=True)


def features_table(trips: pa.Table, store: fs.FeatureStore | None = None) -> pa.Table:
    """Canonical trips -> their features (in input order), with the store's statistics when a store is given."""
    frame = nw.from_native(trips, eager_only=True).with_row_index(_ORDER)
    frame = add_features(apply_repairs(frame), _zones(), keep=(_ORDER, s.PICKUP))
    if store is not None:
        frame = fs.attach(frame, store, store.arrow_tables)
    return frame.sort(_ORDER).drop(_ORDER, s.PICKUP).to_arrow()


class FastFeatures:
    """The features of one trip in microseconds: the online path's answers, remembered by what they read.

    A narwhals evaluation of one row takes milliseconds; an API wants microseconds. Each feature is a
    function of the few inputs it declares (`Feature.reads`), so its value is remembered per distinct input:
    a zone pair, a distance, and for the pickup its calendar hour (`calendar_key`: month, weekday, hour and
    whether the day is a holiday, the only parts of the date the features read). Everything a request can
    carry is evaluated up front in one batch: every zone pair, passenger count, vendor, distance to the cent
    of a mile, and every calendar hour that occurs from 2009 on. What is still new (an odd distance, a trip
    inside the store's window) is evaluated by the real definitions (`features_table`) in one batch per
    call, so a batch of new trips costs one evaluation, not one per trip.

    The store statistics are looked up level by level and the first level with enough trips wins, the rule
    `feature_store.attach` applies in batch (written twice because a join per request is what costs the
    milliseconds; a test holds the two to the same values). A pickup inside the store's window needs its
    fold's statistics and takes the full path.
    """

    def __init__(self, store: fs.FeatureStore | None = None, cache_size: int = 200_000) -> None:
        self.store = store
        self.cache_size = cache_size
        self._groups: dict[tuple[str, ...], list[str]] = {}
        for feature in FEATURES:
            self._groups.setdefault(feature.reads, []).append(feature.name)
        self._known: dict[tuple[str, ...], dict[tuple[Any, ...], tuple[Any, ...]]] = {g: {} for g in self._groups}
        self._levels: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
        if store is not None:
            for level in fs.LEVELS:
                whole = store.arrow_tables[level.name].filter(nw.col(fs.FOLD_COL) == -1)
                rows = whole.select(*level.keys, *fs.STATS).rows()
                self._levels[level.name] = {row[: len(level.keys)]: row[len(level.keys) :] for row in rows}
        self._warm()

    def _warm(self) -> None:
        """Every zone pair, passenger count, vendor, metered distance to the cent of a mile (TLC files and
        most clients carry two decimals) and calendar hour, evaluated in one batch."""
        ids = [*range(1, 266)]
        pairs = [(pu, do) for pu in ids for do in ids]
        hours = calendar_hours()
        self._evaluate(
            [
                {
                    s.PICKUP: hours[i % len(hours)],
                    s.PU_ZONE: pu,
                    s.DO_ZONE: do,
                    s.PASSENGERS: (None, *range(0, 10))[i % 11],
                    s.VENDOR: (None, *range(0, 8))[i % 9],
                    s.DISTANCE: i % 10_001 / 100,
                }
                for i, (pu, do) in enumerate(pairs)
            ]
        )

    def _evaluate(self, trips: Sequence[Mapping[str, Any]], with_store: bool = False) -> list[dict[str, Any]]:
        """Run the definitions on a batch of trips once, remember every answer, and return the features
        (with the store's statistics if asked)."""
        store = self.store if with_store else None
        rows = features_table(trips_table(pd.DataFrame([dict(t) for t in trips])), store).to_pylist()
        self._remember(trips, rows)
        return rows

    def _key(self, reads: tuple[str, ...], trip: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(calendar_key(trip[c]) if c == s.PICKUP else trip.get(c) for c in reads)

    def _remember(self, trips: Sequence[Mapping[str, Any]], rows: list[dict[str, Any]]) -> None:
        for reads, names in self._groups.items():
            known = self._known[reads]
            if len(known) > self.cache_size:
                known.clear()  # bounded memory: a rare flood of new keys costs a refill, not a leak
            for trip, row in zip(trips, rows, strict=True):
                known[self._key(reads, trip)] = tuple(row[n] for n in names)

    def one(self, trip: Mapping[str, Any]) -> dict[str, Any]:
        """Features (and store statistics) of one canonical trip (`pickup_datetime` naive New York time)."""
        return self.many([trip])[0]

    def many(self, trips: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Features (and store statistics) of canonical trips, in order; the ones not answered from memory
        are evaluated together in one batch."""
        out = [self._remembered(trip) for trip in trips]
        new = [i for i, row in enumerate(out) if row is None]
        if new:
            for i, row in zip(new, self._evaluate([trips[i] for i in new], with_store=True), strict=True):
                out[i] = row
        return cast(list[dict[str, Any]], out)

    def recall(self, trips: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
        """The features of every trip from memory (microseconds each), or None as soon as one needs an
        evaluation."""
        out = []
        for trip in trips:
            row = self._remembered(trip)
            if row is None:
                return None
            out.append(row)
        return out

    def _remembered(self, trip: Mapping[str, Any]) -> dict[str, Any] | None:
        """The trip's features from memory, or None if it needs an evaluation."""
        if self.store is not None:
            lo, hi = self.store.window
            if lo <= trip[s.PICKUP] < hi:
                return None
        out: dict[str, Any] = {}
        for reads, names in self._groups.items():
            if reads == GEOMETRY and all(trip.get(c) is not None for c in s.COORDINATES):
                out.update(geometry(*(float(trip[c]) for c in s.COORDINATES)))
                continue
            values = self._known[reads].get(self._key(reads, trip))
            if values is None:
                return None
            out.update(zip(names, values, strict=True))
        if self.store is not None:
            self._attach(out)
        return out

    def _attach(self, features: dict[str, Any]) -> None:
        for prefix, chain in fs.CHAINS.items():
            found = [self._levels[level.name].get(tuple(features[k] for k in level.keys)) for level in chain]
            used = next(
                (i for i, row in enumerate(found[:-1]) if row is not None and row[0] >= fs.MIN_TRIPS), len(chain) - 1
            )
            stats = found[used] or (None,) * len(fs.STATS)
            features[f"{prefix}_trips"] = found[0][0] if found[0] is not None else 0
            for name, value in zip(fs.STATS[1:], stats[1:], strict=True):
                features[f"{prefix}_{name}"] = None if value is None else float(value)
            features[f"{prefix}_level"] = used


def geometry(lon1: float, lat1: float, lon2: float, lat2: float) -> dict[str, float]:
    """The geometry features of a trip with coordinates, as `features.py` defines them, in plain floats.

    Written twice because a narwhals evaluation per request costs 20 ms and coordinates never repeat; the
    random-trip parity test holds the two to the same values.
    """
    rad = math.pi / 180
    half_dlat, half_dlon = (lat2 - lat1) * (rad / 2), (lon2 - lon1) * (rad / 2)
    a = math.sin(half_dlat) ** 2 + math.cos(lat1 * rad) * math.cos(lat2 * rad) * math.sin(half_dlon) ** 2
    haversine = 2 * EARTH_RADIUS_MI * math.asin(min(math.sqrt(a), 1.0))
    east = (lon2 - lon1) * rad * math.cos((lat1 + lat2) * (rad / 2)) * EARTH_RADIUS_MI
    north = (lat2 - lat1) * rad * EARTH_RADIUS_MI
    sin_g, cos_g = math.sin(MANHATTAN_GRID_DEG * rad), math.cos(MANHATTAN_GRID_DEG * rad)
    manhattan = abs(east * sin_g + north * cos_g) + abs(east * cos_g - north * sin_g)
    degrees = math.atan2(east, north) / rad
    bearing = degrees + 360 if degrees < 0 else degrees
    return {STRAIGHT_MILES: haversine, GRID_MILES: manhattan, BEARING: bearing}


def calendar_key(pickup: datetime) -> tuple[int, int, int, bool]:
    """What the features read of a pickup time: month, ISO weekday, hour and whether the day is a US
    federal holiday (`features.holiday_keys`). A test over every year the API accepts holds the features
    to it: two pickups with the same key have the same time features."""
    return (
        pickup.month,
        pickup.isoweekday(),
        pickup.hour,
        pickup.year * 10_000 + pickup.month * 100 + pickup.day in _holidays(),
    )


@cache
def _holidays() -> frozenset[int]:
    return frozenset(holiday_keys())


@cache
def calendar_hours() -> tuple[datetime, ...]:
    """One pickup hour for every `calendar_key` that occurs in `HOLIDAY_YEARS` (about 3,400 hours)."""
    first: dict[tuple[int, int, int, bool], datetime] = {}
    day = date(HOLIDAY_YEARS[0], 1, 1)
    while day.year <= HOLIDAY_YEARS[-1]:
        for hour in range(24):
            pickup = datetime(day.year, day.month, day.day, hour)
            first.setdefault(calendar_key(pickup), pickup)
        day += timedelta(days=1)
    return tuple(first.values())
