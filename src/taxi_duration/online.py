"""The online path: one trip, as an API receives it, to the same features the batch paths compute.

It runs the very expressions of `features.py` and `feature_store.py` on a one-row Arrow table, so the
parity test compares one implementation with itself on different engines, not two implementations.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any

import narwhals as nw
import pyarrow as pa

from taxi_duration import feature_store as fs
from taxi_duration import schema as s
from taxi_duration.engines import arrow_type
from taxi_duration.features import add_features, zone_table
from taxi_duration.validation import apply_repairs


def request_table(trip: Mapping[str, Any]) -> pa.Table:
    """One trip (canonical or TLC column names; timestamps as ISO text or datetime) as a canonical Arrow row."""
    found = s.resolve_aliases(list(trip))
    columns = {}
    for col in s.COLUMNS:
        value = trip.get(found[col.name]) if col.name in found else None
        if col.dtype == nw.Datetime and isinstance(value, str):
            value = datetime.fromisoformat(value)
        columns[col.name] = pa.array([value], type=arrow_type(col.dtype))
    return pa.table(columns)


@cache
def _zones() -> nw.DataFrame[Any]:
    return nw.from_native(zone_table(), eager_only=True)


def online_features(trip: Mapping[str, Any], store: fs.FeatureStore | None = None) -> dict[str, Any]:
    """The features of one trip, with the store's statistics when a store is given."""
    trips = apply_repairs(nw.from_native(request_table(trip), eager_only=True))
    frame = add_features(trips, _zones(), keep=(s.PICKUP,))
    if store is not None:
        frame = fs.attach(frame, store, store.arrow_tables)
    row = frame.drop(s.PICKUP).to_arrow().to_pylist()[0]
    return dict(row)
