"""`taxi-duration stream`: trip requests landing as JSON-lines files, scored as they arrive, exactly once.

The driver admits landed files whole into the checkpoint (`landing.Intake`: a file still being written waits,
bytes appended later are read later, `.gz` is read); Spark Structured Streaming reads the admitted files with
its file source (as Auto Loader reads cloud storage); the JVM splits lines, parses JSON and drops redelivered
`trip_id`s with its state in the checkpoint, on the clock of their arrival, so no event is ever too late to
be scored; each micro-batch then comes to the driver as one Arrow table and takes the scoring road
(`Scorer.score`) once per champion: events with a distance go to the `with_distance` one, events without
to the `pretrip` one, by the API's rule (`serving.Champions`), and each prediction names its model. The
sink is idempotent per batch id: batch N writes `predictions/batch-N.parquet` and
`quarantine/batch-N.parquet` whole or not at all, and a batch Spark re-runs after a crash (same id, same
files, same dedup state) replaces them. The output folder names the checkpoint that writes it, so a new
checkpoint cannot score an old output's events again. docs/streaming.md has the argument.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from taxi_duration.core import schema as s
from taxi_duration.core.atomic import atomic_file, remove_temp_files
from taxi_duration.core.config import Settings
from taxi_duration.core.errors import BadInputError
from taxi_duration.ingest.validation import UNREADABLE_LINE, missing
from taxi_duration.serve.holder import Champions
from taxi_duration.serve.online import new_york_times
from taxi_duration.stream.landing import ADMITTED, PART_NAME, Intake, Look, wait_for_landed

TRIP_ID = "trip_id"
RAW, FILE, REASON = "raw_line", "file", "reason"
# In the checkpoint (its landing folder, output and id) and in the output (the id of the checkpoint writing it).
MANIFEST = "taxi-duration-stream.json"
ERROR_LOG = "stream-error.log"  # in the checkpoint: the whole text of the last failure
LAYOUT = 2  # a checkpoint of layout 1 had Spark read the landing folder itself: its logs name landed files
PREDICTIONS, QUARANTINE = "predictions", "quarantine"
# What an event may carry: the fields of a trip request (`/predict`), under any of their TLC or canonical names.
EVENT_FIELDS: tuple[str, ...] = (s.PICKUP, *s.ZONES, s.PASSENGERS, s.DISTANCE, s.VENDOR, *s.COORDINATES)
_INTEGER = {c for c in EVENT_FIELDS if s.BY_NAME[c].dtype.is_integer()}
_PICKUP_TEXT, _ARRIVED = "_pickup_text", "_arrived"
_CORRUPT = "_corrupt_record"
_SPARK_LOGS = ("offsets", "commits", "sources/0")  # Spark's text logs in a checkpoint, a file per batch
_LOG_VERSION = re.compile(r"^v\d+$")


@dataclass
class Counts:
    """What one run of the stream did, batch by batch (a re-run batch counts again)."""

    batches: int = 0
    predicted: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)


@dataclass
class Progress:
    """One micro-batch as the live line shows it (from that batch's own record in Spark's progress)."""

    batch: int
    rows_in: int
    in_per_s: float
    out_per_s: float
    batch_s: float
    backlog: int  # files landed or admitted and not yet taken by a batch
    dropped: int  # redelivered trip_ids dropped in this batch
    late: int  # events Spark dropped as older than the watermark: none, on the clock of arrival


@dataclass
class Run:
    """The end of a run: its counts and Spark's totals."""

    counts: Counts
    read: int  # events the batches took: scored, quarantined, or dropped by the dedup
    duplicates: int
    late: int
    backlog: int
    seconds: float
    refused: dict[str, str] = field(default_factory=dict)  # landed files not read, and why
    stopped: bool = False  # by Ctrl-C or SIGTERM, rather than at the end of what had landed


def check_folders(input_dir: Path, output: Path, checkpoint: Path) -> None:
    """Refuse, before anything is written: a landing folder that does not exist, a checkpoint another stream
    (or an older version) wrote or that is damaged, and an output another checkpoint wrote (a new checkpoint
    would score its events again and overwrite its batches). Then bind a new checkpoint and its output
    together: the checkpoint first, so a kill in between leaves an output that it can still claim."""
    if not input_dir.is_dir():
        raise BadInputError(input_dir, "landing folder does not exist (create it, or point --input at it)")
    owner = {"input": str(input_dir.resolve()), "output": str(output.resolve())}
    found = _manifest(checkpoint / MANIFEST)
    if found is not None:
        if {k: found.get(k) for k in owner} != owner:
            raise BadInputError(
                checkpoint,
                f"checkpoint of another stream (from {found.get('input')} to {found.get('output')}): "
                "give each stream its own --checkpoint",
            )
        if found.get("layout") != LAYOUT or not isinstance(found.get("id"), str):
            raise BadInputError(
                checkpoint,
                "checkpoint of an older taxi-duration stream, which read the landing folder itself: finish it with "
                "that version, or start a new --checkpoint with a new --output",
            )
        _check_spark_logs(checkpoint)
    elif checkpoint.is_dir() and any(checkpoint.iterdir()):
        raise BadInputError(checkpoint, f"not a taxi-duration stream checkpoint (no {MANIFEST}): pick an empty folder")
    stream_id = found["id"] if found is not None else None
    writer = _manifest(output / MANIFEST)
    if writer is not None and writer.get("id") != stream_id:
        raise BadInputError(
            output,
            f"written by another checkpoint ({writer.get('checkpoint')}): a new one would score its events again "
            "and overwrite its batches; resume with that checkpoint, or give a new --output",
        )
    if writer is None and any(any((output / name).glob("batch-*.parquet")) for name in (PREDICTIONS, QUARANTINE)):
        raise BadInputError(output, "holds batches of a stream that did not name its checkpoint: give a new --output")
    if stream_id is None:
        stream_id = uuid.uuid4().hex
        _write_manifest(checkpoint / MANIFEST, {**owner, "id": stream_id, "layout": LAYOUT})
    if writer is None:
        _write_manifest(output / MANIFEST, {"id": stream_id, "checkpoint": str(checkpoint.resolve())})


def _manifest(path: Path) -> dict[str, Any] | None:
    """A manifest's fields, None when there is none; a damaged one is named."""
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text())
        if not isinstance(found, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(path, f"damaged ({exc}): restore it, or start a new --checkpoint and --output") from None
    return found


def _write_manifest(path: Path, fields: dict[str, Any]) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(fields, indent=2) + "\n")


def _check_spark_logs(checkpoint: Path) -> None:
    """Name the first damaged file of Spark's logs in `checkpoint`: Spark's own error is a JVM stack trace."""
    for log in _SPARK_LOGS:
        folder = checkpoint / log
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                version, *entries = entry.read_text().splitlines()
                if not _LOG_VERSION.match(version):
                    raise ValueError(f"its first line is {version[:40]!r}, not a log version")
                for line in entries:
                    if line != "-":  # an offsets log writes `-` for a source with no offset yet
                        json.loads(line)
            except (UnicodeDecodeError, ValueError) as exc:
                raise BadInputError(
                    entry, f"a damaged file of the stream's checkpoint ({exc}): start a new --checkpoint and --output"
                ) from None


def events(spark: Any, admitted: Path, landing: Path, watermark: str, max_files: int) -> Any:
    """The streaming frame of admitted events, one row per non-blank line: the raw line, the landed file it
    came from, a reason when it cannot reach the scorer (not UTF-8, not a JSON object, no trip_id), the trip_id
    and the request fields (canonical names; the pickup as text), with redelivered trip_ids dropped within
    the watermark of their arrival."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    names = [TRIP_ID, *dict.fromkeys(a for c in EVENT_FIELDS for a in (c, *s.BY_NAME[c].aliases))]
    # Every field as text: a JSON number keeps its digits, and one mistyped field cannot null the others.
    shape = StructType([StructField(n, StringType()) for n in [*names, _CORRUPT]])
    part = F.col("_metadata.file_name")
    lines = (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", max_files)
        .load(str(admitted))
        .select(
            F.col("value").alias(RAW),
            # The landed file a part came from: the name after the part's sequence number.
            F.concat(F.lit(f"{landing.resolve()}/"), F.regexp_extract(part, PART_NAME, 2)).alias(FILE),
        )
        .where(F.trim(RAW) != "")
    )
    parsed = lines.withColumn("e", F.from_json(RAW, shape, {"columnNameOfCorruptRecord": _CORRUPT}))
    is_object = F.is_valid_utf8(RAW) & F.ltrim(RAW).startswith("{") & F.col(f"e.{_CORRUPT}").isNull()
    trip_id = F.trim(F.col(f"e.{TRIP_ID}"))

    def text(column: str) -> Any:
        return F.coalesce(*(F.col(f"e.`{a}`") for a in dict.fromkeys((column, *s.BY_NAME[column].aliases))))

    def number(column: str) -> Any:
        given = text(column)
        # Spaces around a number make it no number, as the API says ("  74  " is a client bug, not zone 74).
        value = F.when(given == F.trim(given), given.try_cast("double"))
        # A whole number where the schema holds an integer, else absent: 74.5 is no zone id.
        return F.when(value == F.floor(value), value.try_cast("int")) if column in _INTEGER else value

    reason = F.when(~is_object, F.lit(UNREADABLE_LINE)).when(
        trip_id.isNull() | (trip_id == ""), F.lit(missing(TRIP_ID))
    )
    rows = parsed.select(
        RAW,
        FILE,
        reason.alias(REASON),
        F.when(is_object, trip_id).alias(TRIP_ID),
        F.when(is_object, text(s.PICKUP)).alias(_PICKUP_TEXT),
        *[F.when(is_object, number(c)).alias(c) for c in EVENT_FIELDS if c != s.PICKUP],
        # The watermark's clock is the batch's own time (fixed in the offsets log, so a re-run batch keeps it),
        # not the pickup: an event is never late, whatever order the files or their events come in, and a
        # redelivery is recognised within the watermark of its first arrival.
        F.current_timestamp().alias(_ARRIVED),
    )
    # Lines without a trip_id have nothing to deduplicate by: they go straight to the sink to be quarantined.
    keyed = rows.where(F.col(REASON).isNull())
    unique = keyed.withWatermark(_ARRIVED, watermark).dropDuplicatesWithinWatermark([TRIP_ID])
    return unique.unionByName(rows.where(F.col(REASON).isNotNull())).drop(_ARRIVED)


def pickup_times(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The events' pickup texts as times, read as the scorer reads them (`online.new_york_times`)."""
    times = new_york_times(pd.Series(texts.to_pylist(), dtype=object))
    return pa.array(times, type=pa.timestamp("us"), from_pandas=True)


def readable(lines: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Lines as text every reader opens: bytes that are not UTF-8 escaped as `\\xNN`, the rest as they were."""
    raw = lines.cast(pa.binary()).to_pylist()  # a reinterpretation: Arrow does not check the text
    return pa.array([None if b is None else b.decode("utf-8", "backslashreplace") for b in raw], pa.string())


class Sink:
    """The `foreachBatch` function: one micro-batch, scored once, written whole under its batch id."""

    def __init__(self, champions: Callable[[], Champions], output: Path) -> None:
        """`champions` gives the models for the next batch: asked once a batch, so a stream that follows the
        registry's aliases switches at a batch boundary."""
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
        if not table.num_rows:  # a batch that only moves the watermark
            self.batch_rows[batch_id] = 0
            return
        champions = self.champions()
        scored_at = datetime.now(UTC)
        decoded = table.column(REASON).is_null().to_numpy(zero_copy_only=False)
        rejected = [table.filter(pa.array(~decoded)).select([RAW, FILE, TRIP_ID, REASON])]
        events = table.filter(pa.array(decoded))
        out: list[pa.Table] = []
        has_distance = events.column(s.DISTANCE).is_valid().to_numpy(zero_copy_only=False)
        groups = champions.split(has_distance) if events.num_rows else []
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
        quarantined = quarantined.set_column(0, RAW, readable(quarantined.column(RAW)))
        _write(quarantined, self.quarantine, batch_id)
        self.batch_rows[batch_id] = table.num_rows
        self.counts.batches += 1
        self.counts.predicted += sum(part.num_rows for part in out)
        self.counts.quarantined.update(quarantined.column(REASON).to_pylist())


def _write(table: pa.Table, folder: Path, batch_id: int) -> None:
    if not table.num_rows:
        return
    with atomic_file(folder / f"batch-{batch_id:08d}.parquet") as tmp:
        pq.write_table(table, tmp)


def untaken(admitted: Path, checkpoint: Path) -> int:
    """Admitted parts that no batch has taken yet: the admitted folder against the file source's log."""
    parts = {p.name for p in admitted.iterdir() if p.name[0] not in "._"} if admitted.is_dir() else set()
    taken: set[str] = set()
    for entry in (checkpoint / "sources" / "0").glob("*"):
        if entry.name.startswith("."):
            continue
        for line in entry.read_text(errors="replace").splitlines()[1:]:  # the first line is the log's version
            taken.add(json.loads(line).get("path", "").rpartition("/")[2])
    return len(parts - taken)


def run(
    settings: Settings,
    champions: Callable[[], Champions],
    input_dir: Path,
    output: Path,
    checkpoint: Path,
    available_now: bool,
    on_progress: Callable[[Progress], None] = lambda p: None,
    on_refused: Callable[[str, str], None] = lambda name, why: None,
    stop: threading.Event | None = None,
) -> Run:
    """Run the stream, scoring each event with the champion `champions()` picks for it, until it has taken
    every landed file (`available_now`), or `stop` is set (the command sets it on Ctrl-C and SIGTERM)."""
    from pyspark.errors import StreamingQueryException

    from taxi_duration.engines.spark import session_for

    check_folders(input_dir, output, checkpoint)
    intake = Intake(input_dir, checkpoint / ADMITTED, settings.stream_settle_seconds)

    def noticed(look: Look) -> None:
        for name, why in look.refused.items():
            on_refused(name, why)

    def backlog() -> int:
        return intake.pending() + untaken(intake.admitted, checkpoint)

    started = last = time.monotonic()
    if available_now:
        wait_for_landed(intake, noticed)  # what has landed, each file whole, before the run takes it
    # Its own SQL settings on the shared context: the dedup state has one store per shuffle partition, each
    # written every batch, so one per core, not the batch jobs' 8 (the checkpoint keeps the number).
    spark = session_for(settings).newSession()
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    sink = Sink(champions, output)
    frame = events(spark, intake.admitted, input_dir, settings.stream_watermark, settings.stream_max_files_per_trigger)
    writer = frame.writeStream.foreachBatch(sink).option("checkpointLocation", str(checkpoint))
    trigger = (
        {"availableNow": True}
        if available_now
        else {"processingTime": f"{round(settings.stream_trigger_seconds * 1000)} milliseconds"}
    )
    # A failed query's JVM stack (often a hundred lines) goes to a file beside the checkpoint's, not the screen.
    spark.sparkContext.setLogLevel("OFF")
    query = writer.trigger(**trigger).start()
    taken = duplicates = late = shown = 0
    stopped = False

    def report(records: list[dict[str, Any]]) -> None:
        nonlocal taken, duplicates, late, shown, last
        for p in batch_records(records, shown, sink.batch_rows):
            shown = p["batchId"] + 1
            now = time.monotonic()
            step = _progress(p, sink.batch_rows[p["batchId"]], now - last, backlog())
            taken, duplicates, late = taken + step.rows_in, duplicates + step.dropped, late + step.late
            if step.rows_in:  # a batch that only moved the watermark is nothing to show
                last = now
                on_progress(step)

    try:
        while True:
            done = query.awaitTermination(0.5)
            if not available_now:
                noticed(intake.look())
            report(query.recentProgress)
            if stop is not None and stop.is_set():
                stopped = True
                break
            if done:
                break
    except KeyboardInterrupt:
        stopped = True
    except StreamingQueryException as exc:
        raise BadInputError(checkpoint, _failure(exc, checkpoint)) from exc
    finally:
        spark.sparkContext.setLogLevel("ERROR")
        # After SIGTERM to the whole group the JVM may be gone already: the counts are the sink's own.
        with contextlib.suppress(Exception):
            query.stop()
            report(query.recentProgress)
    seconds = time.monotonic() - started
    return Run(sink.counts, taken, duplicates, late, backlog(), seconds, dict(intake.refused), stopped)


def batch_records(records: list[dict[str, Any]], after: int, written: dict[int, int]) -> list[dict[str, Any]]:
    """The progress records of batches that ran, from batch `after` on, whose output the sink has written: a
    trigger that found nothing new also leaves a record, bearing the next batch's id and no figures."""
    return [p for p in records if p["batchId"] >= after and "addBatch" in p["durationMs"] and p["batchId"] in written]


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


def _failure(exc: BaseException, checkpoint: Path) -> str:
    """Why the query failed, in one line, its whole text written to `checkpoint/ERROR_LOG`."""
    text = str(exc).strip() or type(exc).__name__
    log = checkpoint / ERROR_LOG
    with atomic_file(log) as tmp:
        tmp.write_text(text + "\n")
    if "CANNOT_LOAD_STATE_STORE" in text:
        return (
            f"the dedup state in {checkpoint / 'state'} cannot be read (damaged): start a new --checkpoint with a "
            f"new --output (Spark's error in {log})"
        )
    causes = [line.removeprefix("Caused by: ") for line in text.splitlines() if line.startswith("Caused by: ")]
    return f"the stream stopped: {causes[-1] if causes else text.splitlines()[0]} (Spark's error in {log})"
