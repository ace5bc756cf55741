"""`taxi-duration predict`: a model version scores every trip of a PostgreSQL table, and the predictions
land in another table, keyed by trip and model version so that a re-run replaces rather than duplicates.

Trips stream from the server in chunks (memory stays flat). A trip without what a prediction needs (its
key, a pickup time, both zones, and the distance when the model uses it) gets no prediction and is counted
by reason; every row read is either predicted or counted. A key found on several rows is predicted once,
from the first of its rows that can be predicted, in the order the server returns them; its other rows are
counted as repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from taxi_duration import postgres
from taxi_duration import schema as s
from taxi_duration.errors import UsageError
from taxi_duration.geo import ZoneIndex, fill_zones, load_index
from taxi_duration.model import Bundle

PREDICTION_COLUMNS = ("model_version", "duration_minutes", "p10_minutes", "p90_minutes", "predicted_at")


@dataclass
class Scored:
    """What a scoring run did."""

    rows_read: int = 0
    predicted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    table_rows: int = 0

    def skip(self, reason: str, rows: np.ndarray) -> np.ndarray:
        """Count the rows (a mask) as skipped for `reason`; returns the mask."""
        if rows.any():
            self.skipped[reason] = self.skipped.get(reason, 0) + int(rows.sum())
        return rows


def _seen_before(keys: pd.Series, usable: np.ndarray, repeated: set[Any], predicted_once: set[Any]) -> np.ndarray:
    """Which usable rows repeat a key already predicted, in this chunk or an earlier one (whose keys
    `predicted_once` holds and is updated with this chunk's)."""
    rows = np.flatnonzero(usable & keys.isin(repeated).to_numpy())
    candidates = keys.iloc[rows]
    again = candidates.duplicated().to_numpy() | candidates.isin(predicted_once).to_numpy()
    predicted_once.update(candidates[~again])
    mask = np.zeros(len(keys), dtype=bool)
    mask[rows[again]] = True
    return mask


def score_table(
    url: str,
    bundle: Bundle,
    version: str,
    table: str,
    key: str,
    target: str,
    chunk_rows: int = 100_000,
    shapes: Path | None = None,
) -> Scored:
    """Predict every trip of `table` and upsert the predictions into `target` on (`key`, model_version).

    A table with coordinates and no zones (the Kaggle trips) gets its zones from the shapes at `shapes`.
    """
    scored = Scored()
    repeated: set[Any] | None = None  # keys on several rows of the table, asked of the server once
    predicted_once: set[Any] = set()  # those of them already predicted
    for chunk in postgres.batches(url, table, chunk_rows):
        if key not in chunk.column_names:
            raise UsageError(f"table {table} has no column {key!r} to key the predictions on")
        if repeated is None:
            repeated = postgres.repeated_keys(url, table, key)
        trips = chunk.to_pandas()
        if s.zones_from_coordinates(chunk.column_names):
            trips = with_zones(trips, load_index(shapes) if shapes else None, table)
        found = {key: key, **s.resolve_aliases(list(trips.columns))}
        usable = np.ones(len(trips), dtype=bool)
        for column in [key, *bundle.required_inputs]:
            if column not in found:
                raise UsageError(f"table {table} has no {column} column (nor a TLC name for it)")
            usable &= ~scored.skip(f"no {column}", trips[found[column]].isna().to_numpy() & usable)
        if repeated:
            usable &= ~scored.skip(f"repeated {key}", _seen_before(trips[key], usable, repeated, predicted_once))
        scored.rows_read += len(trips)
        kept = trips[usable]
        if kept.empty:
            continue
        minutes = bundle.predict(kept)
        low, high = bundle.bounds(minutes)
        now = datetime.now(UTC)
        rows = pa.table(
            {
                key: pa.array(kept[key].to_numpy()),
                "model_version": pa.array([version] * len(kept)),
                "duration_minutes": minutes,
                "p10_minutes": low,
                "p90_minutes": high,
                "predicted_at": pa.array([now] * len(kept), pa.timestamp("us", tz="UTC")),
            }
        )
        scored.table_rows = postgres.upsert(url, target, rows, key=[key, "model_version"])
        scored.predicted += len(kept)
    return scored


def with_zones(trips: pd.DataFrame, index: ZoneIndex | None, table: str) -> pd.DataFrame:
    """Trips with zone ids assigned from their coordinates (source names are kept)."""
    if index is None:
        raise UsageError(f"table {table} has coordinates, not zones: set zone_shapes to the TLC shapefile")
    found = s.resolve_aliases(list(trips.columns))

    def floats(name: str) -> np.ndarray:
        return trips[found[name]].to_numpy(float, na_value=np.nan)

    points = {zone: (floats(lon), floats(lat)) for zone, (lon, lat) in s.ZONE_POINTS.items()}
    return trips.assign(**fill_zones(index, points))


def describe(scored: Scored) -> dict[str, Any]:
    """The run as a JSON-ready dict."""
    return {
        "rows_read": scored.rows_read,
        "predicted": scored.predicted,
        "skipped": scored.skipped,
        "rows_in_target": scored.table_rows,
    }
