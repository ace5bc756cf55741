"""`taxi-duration stream`: trip requests landing as JSON-lines files, scored as they arrive, exactly once.

Spark Structured Streaming reads the landing folder with its file source (as Auto Loader reads cloud
storage); the JVM splits lines, parses JSON and drops redelivered `trip_id`s with its state in the
checkpoint; each micro-batch then comes to the driver as one Arrow table and takes the scoring road
(`Scorer.score`) once per champion: events with a distance go to the `with_distance` one, events without
to the `pretrip` one, by the API's rule (`serving.Champions`), and each prediction names its model. The
sink is idempotent per batch id: batch N writes `predictions/batch-N.parquet` and
`quarantine/batch-N.parquet` whole or not at all, and a batch Spark re-runs after a crash (same id, same
files, same dedup state) replaces them. docs/streaming.md has the argument.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from taxi_duration import schema as s
from taxi_duration.atomic import atomic_file, remove_temp_files
from taxi_duration.config import Settings
from taxi_duration.errors import BadInputError
from taxi_duration.online import new_york_times
from taxi_duration.serving import Champions
from taxi_duration.validation import FIRST_DAY, UNREADABLE_LINE, missing

TRIP_ID = "trip_id"
RAW, FILE, REASON = "raw_line", "file", "reason"
EVENT_GLOB = "*.{jsonl,json,ndjson}"  # what the file source picks up; hidden names (.x, _x) never are
MANIFEST = "taxi-duration-stream.json"  # in the checkpoint: which landing folder and output it belongs to
PREDICTIONS, QUARANTINE = "predictions", "quarantine"
# What an event may carry: the fields of a trip request (`/predict`), under any of their TLC or canonical names.
EVENT_FIELDS: tuple[str, ...] = (s.PICKUP, *s.ZONES, s.PASSENGERS, s.DISTANCE, s.VENDOR, *s.COORDINATES)
_INTEGER = {c for c in EVENT_FIELDS if s.BY_NAME[c].dtype.is_integer()}
_PICKUP_TEXT, _EVENT_TIME, _EARLY = "_pickup_text", "_event_time", "_early"
_CORRUPT = "_corrupt_record"


@dataclass
class Counts:
    """What one run of the stream did, batch by batch (a re-run batch counts again)."""

    batches: int = 0
    predicted: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)


@dataclass
class Progress:
    """One micro-batch as the live line shows it (from Spark's `lastProgress`)."""

    batch: int
    rows_in: int
    in_per_s: float
    out_per_s: float
    batch_s: float
    backlog: int  # files landed and not yet taken by a batch
    dropped: int  # redelivered trip_ids dropped in this batch
    late: int  # events older than the watermark, dropped


@dataclass
class Run:
    """The end of a run: its counts and Spark's totals."""

    counts: Counts
    read: int  # events the batches took: scored, quarantined, or dropped by the dedup
    duplicates: int
    late: int
    backlog: int
    seconds: float


def check_folders(input_dir: Path, output: Path, checkpoint: Path) -> None:
    """Refuse a landing folder that does not exist and a checkpoint another stream wrote, before anything is
    written; record this stream's folders in a new checkpoint."""
    if not input_dir.is_dir():
        raise BadInputError(input_dir, "landing folder does not exist (create it, or point --input at it)")
    owner = {"input": str(input_dir.resolve()), "output": str(output.resolve())}
    manifest = checkpoint / MANIFEST
    if manifest.is_file():
        found = json.loads(manifest.read_text())
        if found != owner:
            raise BadInputError(
                checkpoint,
                f"checkpoint of another stream (from {found['input']} to {found['output']}): "
                "give each stream its own --checkpoint",
            )
        return
    if checkpoint.is_dir() and any(checkpoint.iterdir()):
        raise BadInputError(checkpoint, f"not a taxi-duration stream checkpoint (no {MANIFEST}): pick an empty folder")
    with atomic_file(manifest) as tmp:
        tmp.write_text(json.dumps(owner, indent=2) + "\n")


def events(spark: Any, input_dir: Path, watermark: str, max_files: int) -> Any:
    """The streaming frame of landed events, one row per non-blank line: the raw line, its file, a reason
    when it cannot reach the scorer (not a JSON object, no trip_id), the trip_id and the request fields
    (canonical names; the pickup as text), with redelivered trip_ids dropped within the watermark."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    names = [TRIP_ID, *dict.fromkeys(a for c in EVENT_FIELDS for a in (c, *s.BY_NAME[c].aliases))]
    # Every field as text: a JSON number keeps its digits, and one mistyped field cannot null the others.
    shape = StructType([StructField(n, StringType()) for n in [*names, _CORRUPT]])
    lines = (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", max_files)
        .option("pathGlobFilter", EVENT_GLOB)
        .load(str(input_dir))
        .select(F.col("value").alias(RAW), F.col("_metadata.file_path").alias(FILE))
        .where(F.trim(RAW) != "")
    )
    parsed = lines.withColumn("e", F.from_json(RAW, shape, {"columnNameOfCorruptRecord": _CORRUPT}))
    is_object = F.ltrim(RAW).startswith("{") & F.col(f"e.{_CORRUPT}").isNull()
    trip_id = F.trim(F.col(f"e.{TRIP_ID}"))

    def text(column: str) -> Any:
        return F.coalesce(*(F.col(f"e.`{a}`") for a in dict.fromkeys((column, *s.BY_NAME[column].aliases))))

    def number(column: str) -> Any:
        value = text(column).try_cast("double")
        # A whole number where the schema holds an integer, else absent: 74.5 is no zone id.
        return F.when(value == F.floor(value), value.try_cast("int")) if column in _INTEGER else value

    reason = F.when(~is_object, F.lit(UNREADABLE_LINE)).when(
        trip_id.isNull() | (trip_id == ""), F.lit(missing(TRIP_ID))
    )
    pickup = text(s.PICKUP).try_cast("timestamp")
    rows = parsed.select(
        RAW,
        FILE,
        reason.alias(REASON),
        F.when(is_object, trip_id).alias(TRIP_ID),
        F.when(is_object, text(s.PICKUP)).alias(_PICKUP_TEXT),
        *[F.when(is_object, number(c)).alias(c) for c in EVENT_FIELDS if c != s.PICKUP],
        # The watermark's clock: the pickup, but never later than the batch's time, so a ride booked a year
        # ahead cannot push the watermark past every other event.
        F.least(pickup, F.current_timestamp()).alias(_EVENT_TIME),
        (pickup.isNull() | (pickup < F.lit(FIRST_DAY).cast("timestamp"))).alias(_EARLY),
    )
    # Only events with a trip_id and a plausible pickup are deduplicated; the rest (unreadable, no time, a
    # 1970 clock) go straight to the sink to be quarantined, and never move the watermark.
    keyed = rows.where(F.col(REASON).isNull() & ~F.col(_EARLY))
    unique = keyed.withWatermark(_EVENT_TIME, watermark).dropDuplicatesWithinWatermark([TRIP_ID])
    return unique.unionByName(rows.where(F.col(REASON).isNotNull() | F.col(_EARLY))).drop(_EVENT_TIME, _EARLY)


def pickup_times(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The events' pickup texts as times, read as the scorer reads them (`online.new_york_times`)."""
    times = new_york_times(pd.Series(texts.to_pylist(), dtype=object))
    return pa.array(times, type=pa.timestamp("us"), from_pandas=True)


class Sink:
    """The `foreachBatch` function: one micro-batch, scored once, written whole under its batch id."""

    def __init__(self, champions: Champions, output: Path) -> None:
        self.champions = champions
        self.predictions, self.quarantine = output / PREDICTIONS, output / QUARANTINE
        for folder in (self.predictions, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)
            remove_temp_files(folder)  # a killed run's half-written batch
        self.counts = Counts()
        self.batch_rows: dict[int, int] = {}  # the events each batch of this run scored or quarantined

    def __call__(self, frame: Any, batch_id: int) -> None:
        """Score and write micro-batch `batch_id`; a re-run of the same id replaces its files."""
        self.write(frame.toArrow(), batch_id)

    def write(self, table: pa.Table, batch_id: int) -> None:
        """Score the events of one batch and write its predictions and quarantine files. Each event goes to the
        model the API would pick for it (`Champions.split`: with a distance or without), and its row names it."""
        self.batch_rows[batch_id] = table.num_rows
        if not table.num_rows:  # a batch that only moves the watermark
            return
        scored_at = datetime.now(UTC)
        early = table.column(REASON).is_null().to_numpy(zero_copy_only=False)
        rejected = [table.filter(pa.array(~early)).select([RAW, FILE, TRIP_ID, REASON])]
        events = table.filter(pa.array(early))
        out: list[pa.Table] = []
        has_distance = events.column(s.DISTANCE).is_valid().to_numpy(zero_copy_only=False)
        groups = self.champions.split(has_distance) if events.num_rows else []
        for model, rows in groups:
            part = events if len(rows) == events.num_rows else events.take(rows)
            trips = {c: part.column(c) for c in EVENT_FIELDS if c != s.PICKUP}
            pickups = pickup_times(part.column(_PICKUP_TEXT))
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
                        "model_version": pa.array([answer.version] * n, pa.string()),
                        "model_alias": pa.array([model.alias] * n, pa.string()),
                        "feature_set": pa.array([model.feature_set] * n, pa.string()),
                        "scored_at": pa.array([scored_at] * n, pa.timestamp("us", tz="UTC")),
                    }
                )
            )
            refused = part.filter(pa.array(~predicted)).select([RAW, FILE, TRIP_ID])
            reasons = [r for r in answer.reasons if r is not None]
            rejected.append(refused.append_column(REASON, pa.array(reasons, pa.string())))
        if out:
            _write(pa.concat_tables(out), self.predictions, batch_id)
        quarantined = pa.concat_tables(rejected)
        _write(quarantined, self.quarantine, batch_id)
        self.counts.batches += 1
        self.counts.predicted += sum(part.num_rows for part in out)
        self.counts.quarantined.update(quarantined.column(REASON).to_pylist())


def _write(table: pa.Table, folder: Path, batch_id: int) -> None:
    if not table.num_rows:
        return
    with atomic_file(folder / f"batch-{batch_id:08d}.parquet") as tmp:
        pq.write_table(table, tmp)


def backlog(input_dir: Path, checkpoint: Path) -> int:
    """Files landed that no batch has taken yet: the landing folder against the file source's log."""
    landed = {p.resolve().as_uri() for p in _landed(input_dir)}
    taken: set[str] = set()
    for entry in (checkpoint / "sources" / "0").glob("*"):
        if entry.name.startswith("."):
            continue
        for line in entry.read_text(errors="replace").splitlines()[1:]:  # the first line is the log's version
            path = json.loads(line).get("path", "")
            taken.add(Path(path.removeprefix("file:")).resolve().as_uri() if path.startswith("file:") else path)
    return len(landed - taken)


def _landed(input_dir: Path) -> list[Path]:
    return [p for p in input_dir.iterdir() if p.suffix in (".jsonl", ".json", ".ndjson") and p.name[0] not in "._"]


def run(
    settings: Settings,
    champions: Champions,
    input_dir: Path,
    output: Path,
    checkpoint: Path,
    available_now: bool,
    on_progress: Callable[[Progress], None] = lambda p: None,
) -> Run:
    """Run the stream, scoring each event with the champion `champions` picks for it, until it has taken every
    landed file (`available_now`) or is stopped."""
    from pyspark.errors import StreamingQueryException

    from taxi_duration.spark import session_for

    check_folders(input_dir, output, checkpoint)
    # Its own SQL settings on the shared context: the dedup state has one store per shuffle partition, each
    # written every batch, so one per core, not the batch jobs' 8 (the checkpoint keeps the number).
    spark = session_for(settings).newSession()
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    sink = Sink(champions, output)
    frame = events(spark, input_dir, settings.stream_watermark, settings.stream_max_files_per_trigger)
    writer = frame.writeStream.foreachBatch(sink).option("checkpointLocation", str(checkpoint))
    trigger = (
        {"availableNow": True}
        if available_now
        else {"processingTime": f"{round(settings.stream_trigger_seconds * 1000)} milliseconds"}
    )
    started = last = time.monotonic()
    query = writer.trigger(**trigger).start()
    taken = duplicates = late = shown = 0
    try:
        while True:
            done = query.awaitTermination(0.5)
            for p in query.recentProgress:
                if p["batchId"] < shown or p["batchId"] not in sink.batch_rows:
                    continue
                shown = p["batchId"] + 1
                now = time.monotonic()
                step = _progress(p, sink.batch_rows[p["batchId"]], now - last, backlog(input_dir, checkpoint))
                last = now
                taken, duplicates, late = taken + step.rows_in, duplicates + step.dropped, late + step.late
                on_progress(step)
            if done:
                break
    except StreamingQueryException as exc:
        raise BadInputError(input_dir, f"the stream stopped: {_first_line(exc)}") from exc
    finally:
        query.stop()
    return Run(sink.counts, taken, duplicates, late, backlog(input_dir, checkpoint), time.monotonic() - started)


def _progress(p: dict[str, Any], rows: int, since_last_s: float, files_waiting: int) -> Progress:
    """A batch's line: the events it took (what reached the sink and what the dedup dropped), from Spark's
    progress (whose own input count reads each file once per branch of `events`)."""
    operators = p.get("stateOperators") or []
    dropped = sum(int(o.get("customMetrics", {}).get("numDroppedDuplicateRows", 0)) for o in operators)
    late = sum(int(o.get("numRowsDroppedByWatermark", 0)) for o in operators)
    batch_s = p.get("durationMs", {}).get("triggerExecution", 0) / 1000
    taken = rows + dropped + late
    return Progress(
        batch=p["batchId"],
        rows_in=taken,
        in_per_s=taken / since_last_s if since_last_s else 0.0,
        out_per_s=rows / batch_s if batch_s else 0.0,
        batch_s=batch_s,
        backlog=files_waiting,
        dropped=dropped,
        late=late,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
