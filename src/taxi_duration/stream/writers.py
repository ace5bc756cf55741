"""Where the stream's scored batches go: the `Writer` protocol, Parquet files, and a PostgreSQL table.

A writer is idempotent per Spark batch id: after a crash Spark runs the last batch again (same id, same
events, same dedup state), and writing it again must leave what one write leaves. Parquet files get it by
name, one file per batch replaced whole by a rename; PostgreSQL by key, each prediction upserted on
(trip_id, model_version) in one transaction a batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from taxi_duration.core.atomic import atomic_file, remove_temp_files
from taxi_duration.ingest import postgres
from taxi_duration.stream.events import TRIP_ID
from taxi_duration.stream.scoring import MODEL_VERSION

PREDICTIONS, QUARANTINE = "predictions", "quarantine"  # folders of the stream's output
FILES = "files"  # the sink of a stream whose predictions are Parquet files in its output


def sink_of(table: str | None) -> str:
    """What a stream's predictions are written to, as its checkpoint records it: files, or a table."""
    return FILES if table is None else f"table {table}"


class Writer(Protocol):
    """What one scored micro-batch is written to."""

    def write(self, batch_id: int, predictions: pa.Table | None, quarantine: pa.Table) -> None:
        """Write batch `batch_id`'s predictions (None when it has none) and quarantined lines; a batch written
        again under the same id leaves what one write leaves."""

    def where(self) -> str:
        """Where the predictions and the quarantine are, for the run's summary."""

    @property
    def sink(self) -> str:
        """What the predictions go to (`sink_of`): a checkpoint resumes only with the sink it started with."""


class BatchFiles:
    """A folder of Parquet files, one a batch (`batch-NNNNNNNN.parquet`), each written whole or not at all."""

    def __init__(self, folder: Path) -> None:
        """Create the folder and remove what a killed run left half written."""
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        remove_temp_files(folder)

    def write(self, batch_id: int, rows: pa.Table | None) -> None:
        """Write (or replace) the file of batch `batch_id`; a batch without rows writes none."""
        if rows is None or not rows.num_rows:
            return
        with atomic_file(self.folder / f"batch-{batch_id:08d}.parquet") as tmp:
            pq.write_table(rows, tmp)


class ParquetWriter:
    """Predictions and quarantine as Parquet files: `OUTPUT/predictions/` and `OUTPUT/quarantine/`."""

    def __init__(self, output: Path) -> None:
        """Prepare the two folders of `output`."""
        self.predictions, self.quarantine = BatchFiles(output / PREDICTIONS), BatchFiles(output / QUARANTINE)
        self.sink = sink_of(None)

    def write(self, batch_id: int, predictions: pa.Table | None, quarantine: pa.Table) -> None:
        """Write the batch's two files, each replacing an earlier attempt's."""
        self.predictions.write(batch_id, predictions)
        self.quarantine.write(batch_id, quarantine)

    def where(self) -> str:
        """The two folders."""
        return f"Predictions in {self.predictions.folder}, quarantine in {self.quarantine.folder}"


class PostgresWriter:
    """Predictions upserted into a PostgreSQL table on (trip_id, model_version), as `predict` writes them; the
    quarantine as Parquet files in `OUTPUT/quarantine/` (raw lines for a person to read, most without a key)."""

    def __init__(self, url: str, table: str, output: Path) -> None:
        """Upsert into `table` at `url`; prepare `output`'s quarantine folder."""
        self.url, self.table = url, table
        self.sink = sink_of(table)
        self.quarantine = BatchFiles(output / QUARANTINE)

    def write(self, batch_id: int, predictions: pa.Table | None, quarantine: pa.Table) -> None:
        """Upsert the batch's predictions in one transaction (a replay finds its rows and replaces them), then
        write its quarantine file."""
        if predictions is not None and predictions.num_rows:
            postgres.upsert(self.url, self.table, predictions, key=[TRIP_ID, MODEL_VERSION])
        self.quarantine.write(batch_id, quarantine)

    def where(self) -> str:
        """The table (on the server, password hidden) and the quarantine's folder."""
        return (
            f"Predictions in table {self.table} at {postgres.redacted(self.url)}, "
            f"quarantine in {self.quarantine.folder}"
        )
