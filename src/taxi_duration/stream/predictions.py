"""`taxi-duration stream`: trip requests landing as JSON-lines files, scored as they arrive, exactly once.

The driver admits landed files whole into the checkpoint (`landing.Intake`: a file still being written waits,
bytes appended later are read later, `.gz` is read); Spark Structured Streaming reads the admitted files with
its file source (as Auto Loader reads cloud storage) into decoded events, redeliveries dropped (`events`);
each micro-batch then comes to the driver as one Arrow table, is scored once per champion (`scoring`) and
written by a `Writer` (`writers`: Parquet files, or a PostgreSQL table), idempotent per batch id: a batch
Spark re-runs after a crash (same id, same files, same dedup state) writes nothing twice. The checkpoint and
its output are bound together (`checkpoint`). This module runs the query and reports its progress.
docs/streaming.md has the argument.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from taxi_duration.core.config import Settings
from taxi_duration.core.errors import BadInputError
from taxi_duration.serve.holder import Champions
from taxi_duration.stream.checkpoint import check_folders, failure, untaken
from taxi_duration.stream.events import REASON, events
from taxi_duration.stream.landing import ADMITTED, Intake, Look, wait_for_landed
from taxi_duration.stream.scoring import score_batch

# The output's folder names, where the dashboard and the benchmarks import them from.
from taxi_duration.stream.writers import ParquetWriter, Writer, sink_of


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


class Sink:
    """The `foreachBatch` function: one micro-batch, scored once, handed whole to the writer under its batch id."""

    def __init__(self, champions: Callable[[], Champions], writer: Writer) -> None:
        """`champions` gives the models for the next batch: asked once a batch, so a stream that follows the
        registry's aliases switches at a batch boundary."""
        self.champions = champions
        self.writer = writer
        self.counts = Counts()
        self.batch_rows: dict[int, int] = {}  # the events each batch of this run scored or quarantined

    def __call__(self, frame: Any, batch_id: int) -> None:
        """Score and write micro-batch `batch_id`; a re-run of the same id writes nothing twice."""
        self.write(frame.toArrow(), batch_id)

    def write(self, table: pa.Table, batch_id: int) -> None:
        """Score the events of one batch (`scoring.score_batch`) and write its predictions and quarantine."""
        if not table.num_rows:  # a batch that only moves the watermark
            self.batch_rows[batch_id] = 0
            return
        scored = score_batch(table, self.champions(), datetime.now(UTC))
        self.writer.write(batch_id, scored.predictions, scored.quarantine)
        self.batch_rows[batch_id] = table.num_rows
        self.counts.batches += 1
        self.counts.predicted += scored.predictions.num_rows if scored.predictions is not None else 0
        self.counts.quarantined.update(scored.quarantine.column(REASON).to_pylist())


@dataclass
class _Tally:
    """Spark's figures of the batches shown so far, each batch's line shown as its record comes."""

    last: float  # when the last batch that took events was shown (monotonic seconds)
    taken: int = 0
    duplicates: int = 0
    late: int = 0
    shown: int = 0  # the id of the next batch to show

    def add(
        self,
        records: list[dict[str, Any]],
        written: dict[int, int],
        backlog: Callable[[], int],
        on_progress: Callable[[Progress], None],
    ) -> None:
        """Count and show the batches of `records` (Spark's recent progress) that the sink has `written`."""
        for p in batch_records(records, self.shown, written):
            self.shown = p["batchId"] + 1
            now = time.monotonic()
            step = _progress(p, written[p["batchId"]], now - self.last, backlog())
            self.taken, self.duplicates = self.taken + step.rows_in, self.duplicates + step.dropped
            self.late += step.late
            if step.rows_in:  # a batch that only moved the watermark is nothing to show
                self.last = now
                on_progress(step)


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
    writer: Writer | None = None,
) -> Run:
    """Run the stream, scoring each event with the champion `champions()` picks for it, until it has taken
    every landed file (`available_now`), or `stop` is set (the command sets it on Ctrl-C and SIGTERM).
    `writer` takes the scored batches: by default Parquet files in `output`."""
    from pyspark.errors import StreamingQueryException

    check_folders(input_dir, output, checkpoint, writer.sink if writer is not None else sink_of(None))
    intake = Intake(input_dir, checkpoint / ADMITTED, settings.stream_settle_seconds)

    def noticed(look: Look) -> None:
        for name, why in look.refused.items():
            on_refused(name, why)

    def backlog() -> int:
        return intake.pending() + untaken(intake.admitted, checkpoint)

    started = time.monotonic()
    if available_now:
        wait_for_landed(intake, noticed)  # what has landed, each file whole, before the run takes it
    sink = Sink(champions, writer or ParquetWriter(output))
    spark, query = _start(settings, sink, intake.admitted, input_dir, checkpoint, available_now)
    tally = _Tally(last=started)

    def between_looks() -> None:
        if not available_now:
            noticed(intake.look())
        tally.add(query.recentProgress, sink.batch_rows, backlog, on_progress)

    try:
        stopped = _wait(query, stop, between_looks)
    except StreamingQueryException as exc:
        raise BadInputError(checkpoint, failure(exc, checkpoint)) from exc
    finally:
        spark.sparkContext.setLogLevel("ERROR")
        # After SIGTERM to the whole group the JVM may be gone already: the counts are the sink's own.
        with contextlib.suppress(Exception):
            query.stop()
            tally.add(query.recentProgress, sink.batch_rows, backlog, on_progress)
    seconds = time.monotonic() - started
    return Run(
        sink.counts, tally.taken, tally.duplicates, tally.late, backlog(), seconds, dict(intake.refused), stopped
    )


def _start(
    settings: Settings, sink: Sink, admitted: Path, landing: Path, checkpoint: Path, available_now: bool
) -> tuple[Any, Any]:
    """Start the query over the `admitted` folder, each micro-batch to `sink`: its Spark session and the query."""
    from taxi_duration.engines.spark import session_for

    # Its own SQL settings on the shared context: the dedup state has one store per shuffle partition, each
    # written every batch, so one per core, not the batch jobs' 8 (the checkpoint keeps the number).
    spark = session_for(settings).newSession()
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    frame = events(spark, admitted, landing, settings.stream_watermark, settings.stream_max_files_per_trigger)
    writer = frame.writeStream.foreachBatch(sink).option("checkpointLocation", str(checkpoint))
    trigger = (
        {"availableNow": True}
        if available_now
        else {"processingTime": f"{round(settings.stream_trigger_seconds * 1000)} milliseconds"}
    )
    # A failed query's JVM stack (often a hundred lines) goes to a file beside the checkpoint's, not the screen.
    spark.sparkContext.setLogLevel("OFF")
    return spark, writer.trigger(**trigger).start()


def _wait(query: Any, stop: threading.Event | None, between_looks: Callable[[], None]) -> bool:
    """Wait for the query to end, calling `between_looks` every half second; True when it was stopped (`stop`
    set, or Ctrl-C) rather than ended by itself."""
    try:
        while True:
            done = query.awaitTermination(0.5)
            between_looks()
            if stop is not None and stop.is_set():
                return True
            if done:
                return False
    except KeyboardInterrupt:
        return True


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
