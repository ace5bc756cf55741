"""`taxi-duration replay`: trip files turned into the JSON-lines events a stream reads, landing at a pace.

Each trip becomes a request as it is known at booking: a stable `trip_id` (the source file's stem and the
trip's row number in it), the pickup time, the zones, the passengers and the distance; no drop-off. Events go
out in pickup order, `rows_per_file` to a file, each file written beside the landing folder's files under a
hidden name and renamed into place, so a reader never sees half a file. Pacing: `rate` events a second, or
the trips' own clock sped up `speedup` times, or as fast as the disk allows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from taxi_duration.core import schema as s
from taxi_duration.core.atomic import atomic_file
from taxi_duration.core.config import Engine, Settings
from taxi_duration.core.errors import UsageError
from taxi_duration.engines.frames import Runtime
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.ingest.readers import read_trips
from taxi_duration.stream.events import EVENT_FIELDS, TRIP_ID
from taxi_duration.stream.landing import later_than

# What an event carries: the request fields (zones rather than coordinates: the reader has already found the
# zones of a file that gives points).
_CARRIED = tuple(c for c in EVENT_FIELDS if c not in s.COORDINATES)


def event_table(settings: Settings, files: list[InputFile]) -> pa.Table:
    """Every trip of `files` as an event (`trip_id` and request fields, canonical names), in pickup order."""
    # pandas keeps each file's row order (DuckDB may not), which the trip ids number.
    runtime = Runtime.open(settings, Engine.PANDAS)
    tables = []
    for f in files:
        trips = read_trips(runtime, [f]).collect().to_arrow()
        fields = trips.select(list(_CARRIED))
        ids = pa.array([f"{f.path.stem}:{i}" for i in range(trips.num_rows)], pa.string())
        tables.append(fields.add_column(0, TRIP_ID, ids))
    table = pa.concat_tables(tables) if tables else pa.table({TRIP_ID: pa.array([], pa.string())})
    return table.sort_by([(s.PICKUP, "ascending")]) if table.num_rows else table


def lines(table: pa.Table) -> Iterator[str]:
    """The events as JSON lines: times in ISO form, absent values left out."""
    for row in table.to_pylist():
        event: dict[str, Any] = {k: v for k, v in row.items() if v is not None}
        if s.PICKUP in event:
            event[s.PICKUP] = event[s.PICKUP].isoformat()
        yield json.dumps(event) + "\n"


def replay(
    table: pa.Table,
    to: Path,
    stem: str,
    rows_per_file: int,
    rate: float | None = None,
    speedup: float | None = None,
    on_file: Callable[[Path, int, float | None], None] = lambda path, rows, left_s: None,
) -> list[Path]:
    """Write `table`'s events into `to` as `<stem>-000000.jsonl`..., `rows_per_file` a file, paced; each file
    appears whole. `on_file(path, events, seconds left)` after each (None: no pace, as fast as it goes).

    Raises:
        UsageError: both paces are given, one is not positive, or a file of the same name has landed before.
    """
    if rate is not None and speedup is not None:
        raise UsageError("give --rate or --speedup, not both")
    if (rate is not None and rate <= 0) or (speedup is not None and speedup <= 0) or rows_per_file < 1:
        raise UsageError("--rate, --speedup and --rows-per-file must be positive")
    starts = range(0, table.num_rows, rows_per_file)
    names = [to / f"{stem}-{n:06d}.jsonl" for n in range(len(starts))]
    if clashes := [p.name for p in names if p.exists()]:
        raise UsageError(f"{to} already holds {clashes[0]}: these events were replayed there before")
    to.mkdir(parents=True, exist_ok=True)
    pickups = table.column(s.PICKUP) if table.num_rows else None
    first = pc.min(pickups).as_py() if pickups is not None else None
    began, landed_ns = time.monotonic(), 0
    last = pc.max(pickups).as_py() if pickups is not None else None
    if rate is not None:
        ends: float | None = began + table.num_rows / rate
    elif speedup is not None and first is not None and last is not None:
        ends = began + (last - first).total_seconds() / speedup
    else:
        ends = None
    for path, start in zip(names, starts, strict=True):
        chunk = table.slice(start, rows_per_file)
        if rate is not None:
            _wait_until(began + start / rate)
        elif speedup is not None and first is not None:
            when = pc.min(chunk.column(s.PICKUP)).as_py()
            if when is not None:
                _wait_until(began + (when - first).total_seconds() / speedup)
        with atomic_file(path) as tmp:
            tmp.write_text("".join(lines(chunk)))
            landed_ns = later_than(tmp, landed_ns)
        on_file(path, chunk.num_rows, None if ends is None else max(0.0, ends - time.monotonic()))
    return names


def _wait_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)
