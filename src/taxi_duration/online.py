"""The online path: trips as an API or a model receives them, to the same features the batch paths compute.

It runs the very expressions of `features.py` and `feature_store.py` on an in-memory Arrow table (one row
for one request, a batch for a model's `predict`), so the parity test compares one implementation with
itself on different engines, not two implementations.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import narwhals as nw
import pandas as pd
import pyarrow as pa

from taxi_duration import feature_store as fs
from taxi_duration import schema as s
from taxi_duration.engines import arrow_type
from taxi_duration.features import add_features, zone_table
from taxi_duration.validation import apply_repairs


def request_table(trip: Mapping[str, Any]) -> pa.Table:
    """One trip (canonical or TLC column names; timestamps as ISO text or datetime) as a canonical Arrow row."""
    return trips_table(pd.DataFrame([dict(trip)]))


def trips_table(trips: pd.DataFrame) -> pa.Table:
    """Trips (canonical or TLC column names) as a canonical Arrow table; absent columns are nulls."""
    found = s.resolve_aliases(list(trips.columns))
    columns = {}
    for col in s.COLUMNS:
        values = trips[found[col.name]] if col.name in found else pd.Series([None] * len(trips), dtype=object)
        if col.dtype == nw.Datetime:
            values = pd.to_datetime(values, format="ISO8601")
            if values.dt.tz is not None:
                values = values.dt.tz_convert("UTC").dt.tz_localize(None)
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
