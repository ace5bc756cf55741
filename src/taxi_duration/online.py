"""The online path: trips as an API or a model receives them, to the same features the batch paths compute.

It runs the very expressions of `features.py` and `feature_store.py` on an in-memory Arrow table (one row
for one request, a batch for a model's `predict`), so the parity test compares one implementation with
itself on different engines, not two implementations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

import narwhals as nw
import pandas as pd
import pyarrow as pa

from taxi_duration import feature_store as fs
from taxi_duration import schema as s
from taxi_duration.engines import arrow_type
from taxi_duration.features import (
    ARCSIN_TERMS,
    ARCTAN_TERMS,
    EARTH_RADIUS_MI,
    FEATURES,
    GEOMETRY,
    MANHATTAN_GRID_DEG,
    add_features,
    odd_series,
    zone_table,
)
from taxi_duration.validation import apply_repairs


def request_table(trip: Mapping[str, Any]) -> pa.Table:
    """One trip (canonical or TLC column names; timestamps as ISO text or datetime) as a canonical Arrow row."""
    return trips_table(pd.DataFrame([dict(trip)]))


def trips_table(trips: pd.DataFrame) -> pa.Table:
    """Trips (canonical or TLC column names) as a canonical Arrow table; absent columns are nulls.

    Times with a zone are converted to New York time (`schema.TIME_ZONE`), as TLC files hold them."""
    found = s.resolve_aliases(list(trips.columns))
    columns = {}
    for col in s.COLUMNS:
        values = trips[found[col.name]] if col.name in found else pd.Series([None] * len(trips), dtype=object)
        if col.dtype == nw.Datetime:
            values = pd.to_datetime(values, format="ISO8601")
            if values.dt.tz is not None:
                values = values.dt.tz_convert(s.TIME_ZONE).dt.tz_localize(None)
        columns[col.name] = pa.array(values, type=arrow_type(col.dtype), from_pandas=True)
    return pa.table(columns)


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


def online_features(trip: Mapping[str, Any], store: fs.FeatureStore | None = None) -> dict[str, Any]:
    """The features of one trip, with the store's statistics when a store is given."""
    return dict(features_table(request_table(trip), store).to_pylist()[0])


class FastFeatures:
    """The features of one trip in microseconds: the online path's answers, remembered by what they read.

    A narwhals evaluation of one row takes milliseconds; an API wants microseconds. Each feature is a
    function of the few inputs it declares (`Feature.reads`, the pickup to its hour), so its value is
    remembered per distinct input: the first trip seen in an hour, a zone pair or a distance pays one
    evaluation of the real definitions (`features_table`), later ones a dictionary lookup. Every zone pair,
    passenger count and vendor a request can carry is evaluated up front in one batch.

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
        """Every zone pair, passenger count, vendor and metered distance to the cent of a mile (TLC files and
        most clients carry two decimals), evaluated in one batch."""
        ids = [*range(1, 266)]
        pairs = [(pu, do) for pu in ids for do in ids]
        trips = pd.DataFrame(
            {
                s.PICKUP: [datetime(2000, 1, 1)] * len(pairs),
                s.PU_ZONE: [p for p, _ in pairs],
                s.DO_ZONE: [d for _, d in pairs],
                s.PASSENGERS: [(None, *range(0, 10))[i % 11] for i in range(len(pairs))],
                s.VENDOR: [(None, *range(0, 8))[i % 9] for i in range(len(pairs))],
                s.DISTANCE: [i % 10_001 / 100 for i in range(len(pairs))],
            }
        )
        self._evaluate(trips)

    def warm_hours(self, start: datetime, end: datetime) -> None:
        """Evaluate every pickup hour in [start, end) in one batch, so the first trips in them pay nothing."""
        hours = pd.date_range(_hour(start), end, freq="h", inclusive="left")
        if len(hours):
            self._evaluate(pd.DataFrame({s.PICKUP: hours, s.PU_ZONE: 1, s.DO_ZONE: 1}))

    def _evaluate(self, trips: pd.DataFrame) -> None:
        """Run the definitions on a batch of trips once and remember every answer."""
        self._remember(trips.to_dict("records"), features_table(trips_table(trips)).to_pylist())

    def _key(self, reads: tuple[str, ...], trip: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(_hour(trip[c]) if c == s.PICKUP else trip.get(c) for c in reads)

    def _remember(self, trips: list[Mapping[str, Any]], rows: list[dict[str, Any]]) -> None:
        for reads, names in self._groups.items():
            known = self._known[reads]
            if len(known) > self.cache_size:
                known.clear()  # bounded memory: a rare flood of new keys costs a refill, not a leak
            for trip, row in zip(trips, rows, strict=True):
                known[self._key(reads, trip)] = tuple(row[n] for n in names)

    def one(self, trip: Mapping[str, Any]) -> dict[str, Any]:
        """Features (and store statistics) of one canonical trip (`pickup_datetime` naive New York time)."""
        if self.store is not None:
            lo, hi = self.store.window
            if lo <= trip[s.PICKUP] < hi:
                return online_features(trip, self.store)
        out: dict[str, Any] = {}
        for reads, names in self._groups.items():
            if reads == GEOMETRY and all(trip.get(c) is not None for c in s.COORDINATES):
                out.update(geometry(*(float(trip[c]) for c in s.COORDINATES)))
                continue
            values = self._known[reads].get(self._key(reads, trip))
            if values is None:
                self._remember([trip], features_table(request_table(trip)).to_pylist())
                values = self._known[reads][self._key(reads, trip)]
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
    haversine = 2 * EARTH_RADIUS_MI * odd_series(math.sqrt(a), ARCSIN_TERMS)
    east = (lon2 - lon1) * rad * math.cos((lat1 + lat2) * (rad / 2)) * EARTH_RADIUS_MI
    north = (lat2 - lat1) * rad * EARTH_RADIUS_MI
    sin_g, cos_g = math.sin(MANHATTAN_GRID_DEG * rad), math.cos(MANHATTAN_GRID_DEG * rad)
    manhattan = abs(east * sin_g + north * cos_g) + abs(east * cos_g - north * sin_g)
    ae, an = abs(east), abs(north)
    ratio = an / ae if ae > an else (ae / an if an > 0 else 0.0)
    angle = odd_series(ratio, ARCTAN_TERMS)
    from_north = math.pi / 2 - angle if ae > an else angle
    from_north = math.pi - from_north if north < 0 else from_north
    degrees = from_north / rad
    bearing = 360 - degrees if east < 0 else degrees
    return {"haversine_mi": haversine, "manhattan_mi": manhattan, "bearing_deg": bearing}


def _hour(pickup: datetime) -> datetime:
    return pickup.replace(minute=0, second=0, microsecond=0)
