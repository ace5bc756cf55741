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
ROLE_COL = "role"  # the part a row belongs to, while the three are one frame
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
    # Where Spark wrote each part, by (role, course rows?): Spark reads them from there (`_split`).
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
    """Validate the split's files, build the store on the training rows, attach it to every part.

    The files of the three roles are validated together, as `taxi-duration validate` of the same files would:
    each role's report is its files' share of the one report. On Spark a query's planning and first run cost
    about a second each whatever its rows, so each kind of rows (clean, and the course's) is featurized and
    joined to the store once, the roles told apart by a column.
    """
    by_role = files_by_role(files, split)
    in_split = [f for role in ROLES for f in by_role[role]]
    report = validate(runtime, in_split, workdir / "validated", overwrite=True)
    quality = {role: report.of_files({f.path.name for f in by_role[role]}) for role in ROLES}
    clean = runtime.scan_parquet(workdir / "validated" / CLEAN_DIR).drop(s.REASONS, REPAIRS_COL)
    no_distance = nw.col(s.DISTANCE).is_null() & nw.col(s.PU_LON).is_null()  # see CourseBaseline
    usable = ~(nw.col(s.PU_ZONE).is_null() | nw.col(s.DO_ZONE).is_null() | no_distance)
    as_read = apply_repairs(read_trips(runtime, in_split)).filter(usable)
    featurized = _split(runtime, _featurized(runtime, clean, by_role), workdir / "featurized")
    first, last = (split.train[0], split.train[-1]) if isinstance(split, TimeSplit) else _spanned(featurized["train"])
    store = fs.build(runtime, featurized["train"], first, last, workdir / "feature_store")
    tables = store.tables(runtime)
    attached = nw.concat([part.with_columns(nw.lit(role).alias(ROLE_COL)) for role, part in featurized.items()])
    parts = _split(runtime, fs.attach(attached, store, tables), workdir / "parts")
    course = _split(runtime, fs.attach(_featurized(runtime, as_read, by_role), store, tables), workdir / "course")
    written: dict[tuple[str, bool], Path] = {}
    if runtime.engine is Engine.SPARK:
        for role in ROLES:
            written[role, False] = _role_folder(workdir / "parts", role)
            written[role, True] = _role_folder(workdir / "course", role)
    return Prepared(split, store, parts, course, quality, by_role, runtime, written)


def _featurized(runtime: Runtime, trips: nw.LazyFrame[Any], by_role: dict[str, list[InputFile]]) -> nw.LazyFrame[Any]:
    """The modeled rows of `trips`, with their features and each row's role (from the file it came from)."""
    role = nw.lit(None, dtype=nw.String())
    for name, found in by_role.items():
        role = nw.when(nw.col(s.SOURCE_FILE).is_in([f.path.name for f in found])).then(nw.lit(name)).otherwise(role)
    tagged = trips.with_columns(role.alias(ROLE_COL))
    return featurize(runtime, tagged, keep=(*KEPT, ROLE_COL)).filter(in_target_range())


def _split(runtime: Runtime, tagged: nw.LazyFrame[Any], folder: Path) -> dict[str, nw.LazyFrame[Any]]:
    """Each role's rows of `tagged`, without the role column. On Spark the frame is written to `folder` once,
    a subfolder per role, and each role read back from its own: every later step (the store, the search, the
    baseline, the scoring) reads the parts again, and Spark would otherwise read, validate, featurize and join
    the store anew for each of its actions, planning that whole query each time (about a second) and running a
    job for each of the store's five broadcast tables. A Parquet scan plans in milliseconds, and its rows are
    counted from the files' footers. The embedded engines recompute in milliseconds and are left lazy (a role's
    filter reaches their scan)."""
    if runtime.engine is Engine.SPARK:
        runtime.write_parquet(tagged, folder, partition_by=ROLE_COL)
        types = {name: dtype for name, dtype in tagged.collect_schema().items() if name != ROLE_COL}
        # A role without rows gets no subfolder from Spark.
        return {
            role: runtime.scan_parquet(path) if path.is_dir() else runtime.empty(types)
            for role in ROLES
            for path in [_role_folder(folder, role)]
        }
    return {role: tagged.filter(nw.col(ROLE_COL) == role).drop(ROLE_COL) for role in ROLES}


def _role_folder(folder: Path, role: str) -> Path:
    """Where Spark's write of `folder`, partitioned by role, puts `role`'s rows."""
    return folder / f"{ROLE_COL}={role}"


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
