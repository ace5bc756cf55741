"""`taxi-duration predict`: a model version scores every trip of a PostgreSQL table, and the predictions
land in another table, keyed by trip and model version so that a re-run replaces rather than duplicates.

Trips stream from the server in chunks (memory stays flat) and take the scorer's road (`scorer.py`). A
trip without a key, or that the scorer refuses (no pickup time, no zones, no distance for a model that
reads it, a value out of bounds), gets no prediction and is counted by reason; every row read is either
predicted or counted. A key found on several rows is predicted once, from the first of its rows that can be
predicted, in the order the server returns them; its other rows are counted as repeated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from taxi_duration.core import schema as s
from taxi_duration.core.errors import UsageError
from taxi_duration.ingest import postgres
from taxi_duration.serve.scorer import Scorer

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


def score_table(url: str, scorer: Scorer, table: str, key: str, target: str, chunk_rows: int = 100_000) -> Scored:
    """Predict every trip of `table` and upsert the predictions into `target` on (`key`, model_version).

    A table with coordinates and no zones (the Kaggle trips) gets its zones from the scorer's shapes.
    """
    scored = Scored()
    repeated: set[Any] | None = None  # keys on several rows of the table, asked of the server once
    predicted_once: set[Any] = set()  # those of them already predicted
    for chunk in postgres.batches(url, table, chunk_rows):
        if repeated is None:
            _check_columns(chunk.column_names, scorer, table, key)
            repeated = postgres.repeated_keys(url, table, key)
        scored.rows_read += chunk.num_rows
        keys = chunk.column(key).to_pandas()
        predictions = scorer.score(chunk)
        assert predictions is not None
        usable = ~scored.skip(f"no {key}", keys.isna().to_numpy())
        for reason, n in Counter(r for r, ok in zip(predictions.reasons, usable, strict=True) if ok and r).items():
            scored.skipped[reason] = scored.skipped.get(reason, 0) + n
        usable &= predictions.predicted
        if repeated:
            usable &= ~scored.skip(f"repeated {key}", _seen_before(keys, usable, repeated, predicted_once))
        if not usable.any():
            continue
        now = datetime.now(UTC)
        n = int(usable.sum())
        rows = pa.table(
            {
                key: pa.array(keys[usable].to_numpy()),
                "model_version": pa.array([scorer.version] * n),
                "duration_minutes": predictions.minutes[usable],
                "p10_minutes": predictions.p10[usable],
                "p90_minutes": predictions.p90[usable],
                "predicted_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
            }
        )
        scored.table_rows = postgres.upsert(url, target, rows, key=[key, "model_version"])
        scored.predicted += n
    return scored


def _check_columns(columns: list[str], scorer: Scorer, table: str, key: str) -> None:
    """Refuse a table that lacks a column every trip needs, before any row is scored."""
    if key not in columns:
        raise UsageError(f"table {table} has no column {key!r} to key the predictions on")
    from_points = s.zones_from_coordinates(columns)
    if from_points and scorer.zones is None:
        raise UsageError(f"table {table} has coordinates, not zones: set zone_shapes to the TLC shapefile")
    found = s.resolve_aliases(columns)
    for column in scorer.required:
        if column not in found and not (from_points and column in s.ZONES):
            raise UsageError(f"table {table} has no {column} column (nor a TLC name for it)")


def describe(scored: Scored) -> dict[str, Any]:
    """The run as a JSON-ready dict."""
    return {
        "rows_read": scored.rows_read,
        "predicted": scored.predicted,
        "skipped": scored.skipped,
        "rows_in_target": scored.table_rows,
    }
