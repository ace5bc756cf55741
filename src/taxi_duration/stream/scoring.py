"""One micro-batch of decoded events scored: the rows of its predictions and of its quarantine, nothing written.

Each event goes to the model the API would pick for it (`Champions.split`: with a distance or without) and
takes the scoring road (`Scorer.score`) once per champion; each prediction names its model. An event the
scorer refuses, and a line that never decoded, is quarantined with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import pyarrow as pa

from taxi_duration.core import schema as s
from taxi_duration.serve.holder import Champions
from taxi_duration.serve.online import new_york_times
from taxi_duration.stream.events import EVENT_FIELDS, FILE, PICKUP_TEXT, RAW, REASON, TRIP_ID

MODEL_VERSION = "model_version"


@dataclass(frozen=True)
class ScoredBatch:
    """A batch's rows as written: `predictions` (one row per predicted event; None when no event was) and
    `quarantine` (every other line)."""

    predictions: pa.Table | None
    quarantine: pa.Table


def pickup_times(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The events' pickup texts as times, read as the scorer reads them (`online.new_york_times`)."""
    times = new_york_times(pd.Series(texts.to_pylist(), dtype=object))
    return pa.array(times, type=pa.timestamp("us"), from_pandas=True)


def readable(lines: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lines as text every reader opens: bytes that are not UTF-8 escaped as `\\xNN`, the rest as they were."""
    raw = lines.cast(pa.binary()).to_pylist()  # a reinterpretation: Arrow does not check the text
    return pa.array([None if b is None else b.decode("utf-8", "backslashreplace") for b in raw], pa.string())


def score_batch(table: pa.Table, champions: Champions, scored_at: datetime) -> ScoredBatch:
    """Score the events of one batch (the stream's frame as Arrow) with the champion each one goes to.

    Args:
        table: the batch's rows, as `events.events` gives them.
        champions: the models for this batch.
        scored_at: the time every prediction of the batch carries.

    Returns:
        The batch's predictions and its quarantine, lines readable by any Parquet reader.
    """
    decoded = table.column(REASON).is_null().to_numpy(zero_copy_only=False)
    rejected = [table.filter(pa.array(~decoded)).select([RAW, FILE, TRIP_ID, REASON])]
    events = table.filter(pa.array(decoded))
    out: list[pa.Table] = []
    has_distance = events.column(s.DISTANCE).is_valid().to_numpy(zero_copy_only=False)
    groups = champions.split(has_distance) if events.num_rows else []
    for model, rows in groups:
        part = events if len(rows) == events.num_rows else events.take(rows)
        trips = {c: part.column(c) for c in EVENT_FIELDS if c != s.PICKUP}
        pickups = pickup_times(part.column(PICKUP_TEXT))
        answer = model.score(pa.table({s.PICKUP: pickups, **trips}))
        assert answer is not None  # only `remembered_only` calls may get None
        predicted = answer.predicted
        keep, n = pa.array(predicted), int(predicted.sum())
        zones = {z: pa.array(answer.zones[z][predicted], pa.float64()).cast(pa.int32()) for z in s.ZONES}
        out.append(
            pa.table(
                {
                    TRIP_ID: part.column(TRIP_ID).filter(keep),
                    s.PICKUP: pickups.filter(keep),
                    **zones,
                    "predicted_minutes": answer.minutes[predicted],
                    "p10_minutes": answer.p10[predicted],
                    "p90_minutes": answer.p90[predicted],
                    MODEL_VERSION: pa.array([answer.version] * n, pa.string()),
                    "model_alias": pa.array([model.alias] * n, pa.string()),
                    "feature_set": pa.array([model.feature_set] * n, pa.string()),
                    "scored_at": pa.array([scored_at] * n, pa.timestamp("us", tz="UTC")),
                }
            )
        )
        refused = part.filter(pa.array(~predicted)).select([RAW, FILE, TRIP_ID])
        reasons = [r for r in answer.reasons if r is not None]
        rejected.append(refused.append_column(REASON, pa.array(reasons, pa.string())))
    quarantine = pa.concat_tables(rejected)
    quarantine = quarantine.set_column(0, RAW, readable(quarantine.column(RAW)))
    return ScoredBatch(pa.concat_tables(out) if out else None, quarantine)
