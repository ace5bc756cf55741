"""A small feature store: historical trip statistics by zone pair and by zone and hour of week.

Built from the training window only and written as a versioned folder of Parquet tables with a manifest
(window, row counts, version). The batch, streaming and online paths join the same tables.

Leakage is impossible by construction. Every statistic is stored once per fold (`FOLDS` folds, a row's
fold a fixed function of its own fields) computed without that fold's rows, plus once over the whole
window (fold -1). A row whose pickup lies inside the store's window is joined to its own fold's
statistics, so its own duration never reaches its features; a row outside the window (validation, test,
a request to the API) is joined to the whole-window statistics.

Rare or unseen keys fall back, in order, from the zone pair (or zone and hour) to the pickup zone, to the
borough pair, to the global statistics: the first level with at least `MIN_TRIPS` trips wins.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import narwhals as nw
import pyarrow as pa
import pyarrow.parquet as pq

from taxi_duration.core import schema as s
from taxi_duration.core.atomic import atomic_dir
from taxi_duration.core.config import Engine
from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import Month
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import DO_BOROUGH, PU_BOROUGH, TARGET, trip_miles

FOLDS = 5
MIN_TRIPS = 10
DEFINITION_VERSION = 1  # bump when a statistic or a level changes meaning
FOLD_COL = "_fs_fold"
STATS = ("trips", "median_min", "mean_min", "median_mph")


@dataclass(frozen=True)
class Level:
    """One grouping of trips; `keys` are feature columns."""

    name: str
    keys: tuple[str, ...]


PAIR = Level("pair", (s.PU_ZONE, s.DO_ZONE))
ZONE_HOUR = Level("zone_hour", (s.PU_ZONE, "hour_of_week"))
ZONE = Level("zone", (s.PU_ZONE,))
BOROUGH_PAIR = Level("borough_pair", (PU_BOROUGH, DO_BOROUGH))
GLOBAL = Level("global", ())
LEVELS: tuple[Level, ...] = (PAIR, ZONE_HOUR, ZONE, BOROUGH_PAIR, GLOBAL)

# Output feature prefix -> the levels tried, most specific first.
CHAINS: dict[str, tuple[Level, ...]] = {
    "fs_pair": (PAIR, ZONE, BOROUGH_PAIR, GLOBAL),
    "fs_zone_hour": (ZONE_HOUR, ZONE, BOROUGH_PAIR, GLOBAL),
}
STORE_FEATURES: tuple[str, ...] = tuple(f"{prefix}_{stat}" for prefix in CHAINS for stat in (*STATS, "level"))


@dataclass(frozen=True)
class Manifest:
    """What a store version holds and where it came from."""

    version: str
    window_start: str  # first month, inclusive (YYYY-MM)
    window_end: str  # month after the last, exclusive
    rows: int
    rows_by_level: dict[str, int]
    folds: int
    min_trips: int
    definition_version: int
    created_at: str


@dataclass(frozen=True)
class FeatureStore:
    """An opened store version."""

    path: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: Path) -> FeatureStore:
        """Open a store folder written by `build`."""
        manifest = path / "manifest.json"
        if not manifest.is_file():
            raise UsageError(f"{path}: not a feature store (no manifest.json)")
        return cls(path, Manifest(**json.loads(manifest.read_text())))

    @property
    def window(self) -> tuple[datetime, datetime]:
        """[start, end) of the pickups the statistics were computed from."""
        return _month_start(Month.parse(self.manifest.window_start)), _month_start(
            Month.parse(self.manifest.window_end)
        )

    def tables(self, runtime: Runtime) -> dict[str, nw.LazyFrame[Any]]:
        """Each level's table as a lazy frame on `runtime`, from memory: the tables are small (some 400,000
        rows at most), and on Spark a table in the plan is broadcast to a join without a job of its own (a
        Parquet scan took one per table and per query, a tenth of a second each on any data)."""
        return {name: runtime.from_arrow(table.to_native()) for name, table in self.arrow_tables.items()}

    @cached_property
    def arrow_tables(self) -> dict[str, nw.DataFrame[Any]]:
        """Each level's statistics, every fold's and the whole window's, as eager Arrow frames, for the online
        path (read once): a trip picked up inside the window joins its fold's, as in batch."""
        return {level.name: nw.from_native(pq.read_table(self.path / f"{level.name}.parquet")) for level in LEVELS}


def _month_start(month: Month) -> datetime:
    return datetime(month.year, month.month, 1)


def fold_expr() -> nw.Expr:
    """A row's fold, 0..FOLDS-1, from its own fields (the same on every engine)."""
    pickup = nw.col(s.PICKUP)
    mix = (
        pickup.dt.minute().cast(nw.Int64()) * 60
        + pickup.dt.second().cast(nw.Int64())
        + nw.col(s.PU_ZONE).cast(nw.Int64()) * 7
        + nw.col(s.DO_ZONE).cast(nw.Int64()) * 13
    )
    return mix - (mix // FOLDS) * FOLDS  # `%` is missing on narwhals' pandas-Arrow backend


def _aggregate(frame: nw.LazyFrame[Any], level: Level) -> nw.LazyFrame[Any]:
    """`level`'s statistics for each fold of `frame` (its rows carry the fold they are counted under)."""
    # The derived values are columns first, so each aggregation is a plain one that every backend runs
    # natively (pandas falls back to a slow per-group apply for an aggregation of an expression).
    inputs = frame.with_columns(
        (trip_miles() / (nw.col(TARGET) / 60.0)).alias("_mph"),
        # A float sum depends on the order it adds in, which DuckDB's and Spark's threads do not fix (a
        # window's means moved in the last bits between runs, and so did the model): whole milliseconds add
        # up exactly.
        (nw.col(TARGET) * 60_000).round(0).cast(nw.Int64()).alias("_millis"),
    )
    out = inputs.group_by(*level.keys, FOLD_COL).agg(
        nw.len().alias("trips"),
        nw.col(TARGET).median().alias("median_min"),
        nw.col("_millis").sum().alias("_millis_sum"),
        nw.col(TARGET).count().alias("_timed"),
        nw.col("_mph").median().alias("median_mph"),
    )
    mean = (nw.col("_millis_sum") / nw.col("_timed") / 60_000).alias("mean_min")
    typed = (nw.col("trips").cast(nw.Int64()), nw.col(FOLD_COL).cast(nw.Int32()))
    return out.with_columns(mean, *typed).select(*level.keys, FOLD_COL, *STATS)


def _parts(runtime: Runtime, in_window: nw.LazyFrame[Any]) -> list[nw.LazyFrame[Any]]:
    """The rows each part of a level is computed from, the fold it is counted under in `FOLD_COL`: the whole
    window (-1), then each fold's complement.

    On Spark, one part: each row joined to the folds it counts under (a 25-row table), so a level is one
    query (a query costs Spark half a second planned and run, whatever its rows; its aggregation spills). On
    the embedded engines, one part per fold: a median holds every value of its group until the group-by ends,
    and DuckDB cannot spill it, so the six parts in one query held 5.4 GiB at 45M trips.
    """
    own = f"{FOLD_COL}_own"
    if runtime.engine is Engine.SPARK:
        pairs = [(k, f) for k in range(FOLDS) for f in (-1, *range(FOLDS)) if f != k]
        counted = pa.table({own: [k for k, _ in pairs], FOLD_COL: [f for _, f in pairs]}, schema=_FOLD_PAIRS)
        return [in_window.rename({FOLD_COL: own}).join(runtime.from_arrow(counted), on=own).drop(own)]
    whole = in_window.with_columns(nw.lit(-1, dtype=nw.Int32()).alias(FOLD_COL))
    rest = [
        in_window.filter(nw.col(FOLD_COL) != k).with_columns(nw.lit(k, dtype=nw.Int32()).alias(FOLD_COL))
        for k in range(FOLDS)
    ]
    return [whole, *rest]


_FOLD_PAIRS = pa.schema([(f"{FOLD_COL}_own", pa.int32()), (FOLD_COL, pa.int32())])


def build(runtime: Runtime, trips: nw.LazyFrame[Any], start: Month, end: Month, root: Path) -> FeatureStore:
    """Compute the store from clean trips (with features and target) picked up in months [start, end].

    Rows outside the window are ignored, so passing more data than the window cannot leak it in.
    """
    window_end = end.next()
    lo, hi = _month_start(start), _month_start(window_end)
    in_window = trips.filter((nw.col(s.PICKUP) >= lo) & (nw.col(s.PICKUP) < hi)).with_columns(
        fold_expr().cast(nw.Int32()).alias(FOLD_COL)
    )
    identity = {"start": str(start), "end": str(window_end), "definition": DEFINITION_VERSION}
    with atomic_dir(root / ".building", overwrite=True) as tmp:
        rows_by_level = {}
        parts = _parts(runtime, in_window)
        for level in LEVELS:
            # Collected part by part: a level's statistics are small (some 400,000 rows at most).
            table = pa.concat_tables(_aggregate(part, level).collect().to_arrow() for part in parts)
            pq.write_table(table, tmp / f"{level.name}.parquet")
            rows_by_level[level.name] = table.num_rows
        rows = sum(pq.read_table(tmp / "global.parquet", filters=[(FOLD_COL, "=", -1)]).column("trips").to_pylist())
        if not rows:
            raise UsageError(f"no trips picked up in {start}..{end}: the feature store would be empty")
        identity["rows"] = rows
        version = hashlib.sha256(json.dumps(identity | rows_by_level, sort_keys=True).encode()).hexdigest()[:12]
        manifest = Manifest(
            version=version,
            window_start=str(start),
            window_end=str(window_end),
            rows=rows,
            rows_by_level=rows_by_level,
            folds=FOLDS,
            min_trips=MIN_TRIPS,
            definition_version=DEFINITION_VERSION,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        (tmp / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    final = root / version
    if final.exists():
        shutil.rmtree(root / ".building")
    else:
        (root / ".building").rename(final)
    return FeatureStore(final, manifest)


def attach(frame: Any, store: FeatureStore, tables: Mapping[str, Any]) -> Any:
    """Join the store's statistics to `frame` (features computed), adding `STORE_FEATURES`.

    `tables` are the store's level tables on the frame's own engine (`store.tables(runtime)`, or
    `store.arrow_tables` for an eager Arrow frame).
    """
    lo, hi = store.window
    inside = (nw.col(s.PICKUP) >= lo) & (nw.col(s.PICKUP) < hi)
    out = frame.with_columns(nw.when(inside).then(fold_expr()).otherwise(nw.lit(-1)).cast(nw.Int32()).alias(FOLD_COL))
    for level in LEVELS:
        renamed = tables[level.name].rename({stat: f"_{level.name}_{stat}" for stat in STATS})
        out = out.join(renamed, on=[*level.keys, FOLD_COL], how="left")
    # One select for every statistic: each step of a Spark plan is analyzed anew with the whole plan below it.
    features = [
        expr
        for prefix, chain in CHAINS.items()
        for expr in (
            *(_first_with_enough_trips(chain, stat).alias(f"{prefix}_{stat}") for stat in STATS),
            _level_used(chain).alias(f"{prefix}_level"),
        )
    ]
    return out.select(*(nw.col(c) for c in frame.collect_schema().names()), *features)


def _enough(level: Level) -> nw.Expr:
    return nw.col(f"_{level.name}_trips").fill_null(0) >= MIN_TRIPS


def _first_with_enough_trips(chain: tuple[Level, ...], stat: str) -> nw.Expr:
    if stat == "trips":  # how often the most specific key was seen: 0 when never
        return nw.col(f"_{chain[0].name}_trips").fill_null(0).cast(nw.Int64())
    expr = nw.col(f"_{chain[-1].name}_{stat}")
    for level in reversed(chain[:-1]):
        expr = nw.when(_enough(level)).then(nw.col(f"_{level.name}_{stat}")).otherwise(expr)
    return expr.cast(nw.Float64())


def _level_used(chain: tuple[Level, ...]) -> nw.Expr:
    """0 for the most specific level of the chain, up to len(chain) - 1 for the global statistics."""
    expr: nw.Expr = nw.lit(len(chain) - 1)
    for i, level in reversed(list(enumerate(chain[:-1]))):
        expr = nw.when(_enough(level)).then(nw.lit(i)).otherwise(expr)
    return expr.cast(nw.Int32())
