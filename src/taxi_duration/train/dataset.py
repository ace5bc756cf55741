"""Model-ready data for a time-honest split: validated, featurized, joined to a feature store built on the
training window only.

Every month is validated by the same job as `taxi-duration validate`, so the rows a model sees are the
clean rows a user can inspect; of those, the trips inside `TARGET_RANGE` are modeled, and the store is built
from the training months' modeled rows alone. The parts stay lazy frames on the runtime's engine: Spark
trains on them where they lie, the embedded path reads them as pandas frames a batch at a time.

Beside them, the *course rows*: every trip of 1-60 minutes as read, uncleaned (only rows missing the
course model's own inputs are left out, as it cannot use them), which is what the course baseline trains on
and how it is judged in its own right.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from taxi_duration.core import schema as s
from taxi_duration.core.config import Engine
from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import Month
from taxi_duration.engines.frames import Runtime, record_batches
from taxi_duration.features import store as fs
from taxi_duration.features.definitions import TARGET, featurize, in_target_range
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.ingest.quality import CLEAN_DIR, QualityReport, parquet_rows, validate
from taxi_duration.ingest.readers import read_trips
from taxi_duration.ingest.validation import REPAIRS_COL, apply_repairs
from taxi_duration.train.splits import Split, TimeSplit

ROLES = ("train", "validate", "test")
# Trip columns kept beside the features: what re-scoring a champion on these rows needs besides them.
KEPT = (s.PICKUP, *s.COORDINATES)
# Pickup time first, then enough of the trip to break ties: the same files give the same row order, so
# the same model (engines return tied rows in any order they like).
ORDER = (s.PICKUP, s.PU_ZONE, s.DO_ZONE, s.DISTANCE, TARGET, s.PASSENGERS, s.VENDOR)
# Rows per batch when a part is read a batch at a time: about 30 MB of model inputs.
BATCH_ROWS = 100_000


@dataclass
class Prepared:
    """The three parts of a split (clean rows, and the course's uncleaned rows): features, store features and
    target, as lazy frames on one engine."""

    split: Split
    store: fs.FeatureStore
    parts: dict[str, nw.LazyFrame[Any]]
    course_parts: dict[str, nw.LazyFrame[Any]]
    quality: dict[str, QualityReport]
    files: dict[str, list[InputFile]]
    runtime: Runtime = field(repr=False)
    # Where Spark wrote each part, by (role, course rows?): Spark reads them from there (`_written`).
    written: dict[tuple[str, bool], Path] = field(default_factory=dict, repr=False)
    _pandas: dict[tuple[str, bool], pd.DataFrame] = field(default_factory=dict, repr=False)

    def pandas(self, role: str, course_rows: bool = False) -> pd.DataFrame:
        """One part as a pandas frame in pickup order (collected once)."""
        key = (role, course_rows)
        if key not in self._pandas:
            part = (self.course_parts if course_rows else self.parts)[role]
            self._pandas[key] = part.sort(*ORDER).collect().to_pandas()
        return self._pandas[key]

    def rows(self, role: str, course_rows: bool = False) -> int:
        """How many rows a part holds: from its files' footers where Spark wrote it, else counted."""
        folder = self.written.get((role, course_rows))
        if folder is not None:
            return parquet_rows(folder)
        part = (self.course_parts if course_rows else self.parts)[role]
        return int(part.select(nw.len()).collect().item())

    def batches(
        self, role: str, columns: Sequence[str] | None = None, course_rows: bool = False, rows: int = BATCH_ROWS
    ) -> Iterator[pd.DataFrame]:
        """One part's `columns` (default: all), in the same pickup order as `pandas`, as pandas frames of at
        most `rows` rows: the part is never one frame."""
        part = (self.course_parts if course_rows else self.parts)[role].sort(*ORDER)
        read = record_batches(part if columns is None else part.select(*dict.fromkeys(columns)), rows)
        # The sort holds every row of the part until the first batch. The reader is closed before the bound is
        # lifted, even when the caller stops early, so no query runs on past it unbounded.
        with self.runtime.spilling(), contextlib.closing(read):
            for batch in read:
                yield batch.to_pandas()


def sample_batches(batches: Iterable[pd.DataFrame], total: int, rows: int, seed: int = 0) -> Iterator[pd.DataFrame]:
    """`rows` of the `total` rows that `batches` hold, drawn at random (the same for a seed), in their order."""
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=min(rows, total), replace=False))
    start = 0
    for batch in batches:
        first, last = np.searchsorted(chosen, [start, start + len(batch)])
        yield batch.iloc[chosen[first:last] - start]
        start += len(batch)


def prepare(runtime: Runtime, files: list[InputFile], split: Split, workdir: Path) -> Prepared:
    """Validate the files of each role, build the store on the training rows, attach it to every part."""
    by_role = files_by_role(files, split)
    quality: dict[str, QualityReport] = {}
    featurized: dict[str, nw.LazyFrame[Any]] = {}
    course: dict[str, nw.LazyFrame[Any]] = {}
    written: dict[tuple[str, bool], Path] = {}
    for role in ROLES:
        quality[role] = validate(runtime, by_role[role], workdir / "validated" / role, overwrite=True)
        clean = runtime.scan_parquet(workdir / "validated" / role / CLEAN_DIR).drop(s.REASONS, REPAIRS_COL)
        as_read = apply_repairs(read_trips(runtime, by_role[role]))
        no_distance = nw.col(s.DISTANCE).is_null() & nw.col(s.PU_LON).is_null()  # see CourseBaseline
        usable = ~(nw.col(s.PU_ZONE).is_null() | nw.col(s.DO_ZONE).is_null() | no_distance)
        for trips, frames in ((clean, featurized), (as_read.filter(usable), course)):
            frames[role] = featurize(runtime, trips, keep=KEPT).filter(in_target_range())
    # The store reads the training rows once per level: on Spark from where they were written.
    featurized["train"] = _written(runtime, featurized["train"], workdir / "store_rows")
    first, last = (split.train[0], split.train[-1]) if isinstance(split, TimeSplit) else _spanned(featurized["train"])
    store = fs.build(runtime, featurized["train"], first, last, workdir / "feature_store")
    tables = store.tables(runtime)
    parts: dict[str, nw.LazyFrame[Any]] = {}
    course_parts: dict[str, nw.LazyFrame[Any]] = {}
    for course_rows, frames, attached in ((False, featurized, parts), (True, course, course_parts)):
        for role in ROLES:
            folder = workdir / ("course" if course_rows else "featurized") / role
            attached[role] = _written(runtime, fs.attach(frames[role], store, tables), folder)
            if runtime.engine is Engine.SPARK:
                written[role, course_rows] = folder
    return Prepared(split, store, parts, course_parts, quality, by_role, runtime, written)


def _written(runtime: Runtime, frame: nw.LazyFrame[Any], folder: Path) -> nw.LazyFrame[Any]:
    """`frame`, on Spark written to `folder` once and read back from there. The store, the search, the baseline
    and the scoring all read the parts again, and Spark would otherwise read, validate, featurize and join the
    store to the files anew each time: plan that whole query for each of its actions (about a second each),
    and run a job for each of the store's five broadcast tables. A Parquet scan plans in milliseconds, and its
    rows are counted from the files' footers. The embedded engines recompute in milliseconds and are left
    lazy."""
    if runtime.engine is not Engine.SPARK:
        return frame
    runtime.write_parquet(frame, folder)
    return runtime.scan_parquet(folder)


def _spanned(trips: nw.LazyFrame[Any]) -> tuple[Month, Month]:
    """The first and last month of the trips' pickups: the store's window for a split by file."""
    first, last = trips.select(nw.col(s.PICKUP).min().alias("a"), nw.col(s.PICKUP).max().alias("b")).collect().row(0)
    if first is None:
        raise UsageError("the training files hold no trips to learn from")
    return Month(first.year, first.month), Month(last.year, last.month)


def files_by_role(files: list[InputFile], split: Split) -> dict[str, list[InputFile]]:
    """The input files of each part of the split; files of other months are left out."""
    by_role: dict[str, list[InputFile]] = {role: [] for role in ROLES}
    for f in files:
        role = split.role_of(f)
        if role is not None:
            by_role[role].append(f)
    for role, found in by_role.items():
        if not found:
            raise UsageError(f"no input file for the {role} part of the split ({split})")
    return by_role
