"""`taxi-duration predict`: a model version scores every trip of a PostgreSQL table, and the predictions
land in another table, keyed by trip and model version so that a re-run replaces rather than duplicates.

Trips stream from the server in chunks (memory stays flat). A trip without what a prediction needs (a
pickup time, both zones, and the distance when the model uses it) gets no prediction and is counted by
reason; every row read is either predicted or counted.
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
from taxi_duration.geo import ZoneIndex, load_index
from taxi_duration.model import Bundle

PREDICTION_COLUMNS = ("model_version", "duration_minutes", "p10_minutes", "p90_minutes", "predicted_at")


@dataclass
class Scored:
    """What a scoring run did."""

    rows_read: int = 0
    predicted: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    table_rows: int = 0


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
    for chunk in postgres.batches(url, table, chunk_rows):
        if key not in chunk.column_names:
            raise UsageError(f"table {table} has no column {key!r} to key the predictions on")
        trips = chunk.to_pandas()
        if s.zones_from_coordinates(chunk.column_names):
            trips = with_zones(trips, load_index(shapes) if shapes else None, table)
        found = s.resolve_aliases(list(trips.columns))
        usable = np.ones(len(trips), dtype=bool)
        for column in bundle.required_inputs:
            if column not in found:
                raise UsageError(f"table {table} has no {column} column (nor a TLC name for it)")
            missing = trips[found[column]].isna().to_numpy() & usable
            if missing.any():
                scored.skipped[f"no {column}"] = scored.skipped.get(f"no {column}", 0) + int(missing.sum())
            usable &= ~missing
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
    return trips.assign(
        **{
            zone: index.assign(
                trips[found[lon]].to_numpy(float, na_value=np.nan), trips[found[lat]].to_numpy(float, na_value=np.nan)
            )
            for zone, (lon, lat) in s.ZONE_POINTS.items()
        }
    )


def describe(scored: Scored) -> dict[str, Any]:
    """The run as a JSON-ready dict."""
    return {
        "rows_read": scored.rows_read,
        "predicted": scored.predicted,
        "skipped": scored.skipped,
        "rows_in_target": scored.table_rows,
    }
