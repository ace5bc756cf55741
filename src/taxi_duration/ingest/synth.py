"""Synthetic NYC TLC trip files at any scale, drawn from a profile measured on real green taxi data.

A chunk of trips is made in five vectorized steps (no Python loop runs per row):
1. zone pair: one categorical draw over the top real pairs plus, per pickup zone, an "elsewhere" bucket whose
   dropoff comes from a gravity model (where that borough's other trips went, discounted by distance);
2. pickup time: an hour of the month drawn with the real trip rate of its hour of week, then a uniform second;
3. distance: the pair's real median miles (outside the top pairs: centroid haversine x detour factor) times
   empirical noise;
4. duration: miles / speed, with speed = hour-of-week mph x (miles / ref) ** beta x pair factor x empirical
   noise, kept within 1 min..3 h and under 80 mph;
5. fares and the other columns from their real distributions (steps 1-5: `ingest/synth_trips.py`), then the
   dirt of `DirtyShares` (`ingest/synth_dirt.py`). This module turns the chunks into files.

The profile is `taxi_duration/geo/data/calibration.json` (see `docs/calibration.md`). Yellow files reuse the green
profile under yellow column names: only the header tells them apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_duration.core.atomic import atomic_file
from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import Month
from taxi_duration.geo.calibration import Profile, load_profile
from taxi_duration.ingest.synth_dirt import MONEY, DirtyShares, add_dirt
from taxi_duration.ingest.synth_trips import MonthPlan, draw_trips, plan_month

__all__ = ["COMPRESSION", "SERVICES", "DirtyShares", "generate", "parse_rows", "schema"]

SERVICES = ("green", "yellow")
# Measured on 8M rows (2 cores): zstd level 1, snappy and lz4 all ran at 2.8-2.9M rows/s (the CPU, not the
# codec, is the limit) and zstd wrote 15% smaller files. Timestamps are near-unique: a dictionary only costs.
COMPRESSION = {"compression": "zstd", "compression_level": 1}
_FLAGS = pa.array(["N", "Y"], pa.large_string())
_INT_TYPES = {"VendorID": pa.int32(), "PULocationID": pa.int32(), "DOLocationID": pa.int32()}
_INT_TYPES |= dict.fromkeys(("passenger_count", "RatecodeID", "payment_type", "trip_type"), pa.int64())
# TLC column order; `pickup` and `dropoff` get the service's prefix.
_GREEN = (
    *("VendorID", "pickup", "dropoff", "store_and_fwd_flag", "RatecodeID", "PULocationID", "DOLocationID"),
    *("passenger_count", "trip_distance", *MONEY[:5], "ehail_fee", MONEY[5], "total_amount"),
    *("payment_type", "trip_type", "congestion_surcharge"),
)
_YELLOW = (
    *("VendorID", "pickup", "dropoff", "passenger_count", "trip_distance", "RatecodeID", "store_and_fwd_flag"),
    *("PULocationID", "DOLocationID", "payment_type", *MONEY, "total_amount", "congestion_surcharge"),
    "Airport_fee",
)


def schema(service: str) -> pa.Schema:
    """The Arrow schema of a `service` file: TLC column names in TLC order, 2023 ("era B") types."""
    if service not in SERVICES:
        raise UsageError(f"unknown service {service!r}: synthetic data exists for {', '.join(SERVICES)}")
    prefix = "lpep" if service == "green" else "tpep"
    out = []
    for col in _GREEN if service == "green" else _YELLOW:
        if col in ("pickup", "dropoff"):
            out.append(pa.field(f"{prefix}_{col}_datetime", pa.timestamp("us")))
        elif col == "store_and_fwd_flag":
            out.append(pa.field(col, pa.large_string()))
        else:
            out.append(pa.field(col, _INT_TYPES.get(col, pa.float64())))
    return pa.schema(out)


_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9}
_ROWS = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([kmb]?)", re.IGNORECASE)


def parse_rows(text: str) -> int:
    """Parse a row count: `200000`, `200_000`, `1.5k`, `50M`, `2B` (suffixes are powers of 1000).

    Raises:
        UsageError: not a number with an optional k/M/B suffix, not a whole number of rows, or not positive.
    """
    m = _ROWS.fullmatch(text.strip().replace("_", ""))
    try:
        value = Decimal(m[1]) * _SUFFIX[m[2].lower()] if m else None
    except InvalidOperation:
        value = None
    if value is None or value <= 0 or value != value.to_integral_value():
        raise UsageError(f"not a positive whole row count: {text!r} (e.g. 200000, 1.5k, 50M, 2B)")
    return int(value)


def _table(cols: dict[str, np.ndarray], nulls: dict[str, np.ndarray], target: pa.Schema) -> pa.Table:
    arrays = []
    for field in target:
        key = field.name.split("_")[1] if field.name.endswith("_datetime") else field.name
        mask = nulls[key] if key in nulls and nulls[key].any() else None
        if field.name == "ehail_fee":
            arrays.append(pa.nulls(len(cols["pickup"]), pa.float64()))
        elif field.name == "store_and_fwd_flag":
            arrays.append(pc.take(_FLAGS, pa.array(cols[key], mask=mask)))
        elif pa.types.is_timestamp(field.type):
            arrays.append(pa.array((cols[key] * 1_000_000).view("datetime64[us]"), mask=mask))
        else:
            arrays.append(pa.array(cols[key].astype(field.type.to_pandas_dtype(), copy=False), mask=mask))
    return pa.Table.from_arrays(arrays, schema=target)


def _chunk(p: Profile, plan: MonthPlan, seed: int, index: int, n: int, service: str, dirty: DirtyShares) -> pa.Table:
    # One stream per (seed, month, chunk): a chunk is the same whatever the other months or chunks are.
    rng = np.random.default_rng(np.random.SeedSequence([seed, plan.month.yyyymm, index]))
    cols = draw_trips(p, plan, n, rng, service)
    nulls = add_dirt(cols, dirty, plan, rng)
    return _table(cols, nulls, schema(service))


def _prefetched(pool: ThreadPoolExecutor, jobs: Sequence[Callable[[], pa.Table]]) -> Generator[pa.Table]:
    """Run `jobs` in order with the next one already running while the caller writes the current one."""
    if not jobs:
        return
    future = pool.submit(jobs[0])
    for job in jobs[1:]:
        table = future.result()
        future = pool.submit(job)
        yield table
    yield future.result()


def generate(
    rows: int,
    months: list[Month],
    out: Path,
    *,
    seed: int = 0,
    service: str = "green",
    dirty: DirtyShares = DirtyShares(),  # Frozen, so one shared default is safe.
    drift: float = 0.0,
    chunk_rows: int = 1_000_000,
    on_progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write `rows` trips spread evenly over `months` as `{service}_tripdata_YYYY-MM.parquet` in `out`.

    Each month gets `rows // len(months)` trips, the first `rows % len(months)` months one more. Files are
    written chunk by chunk (memory stays flat at any size) and appear whole or not at all; an existing file of
    the same name is replaced. The same arguments give byte-identical files.

    Drift: with `drift` > 0, month `i` (0 for the first of `months`, in order) has every speed multiplied by
    `max(1 - drift * i, 0.1)` (more congestion, so longer durations) and every pickup zone's weight multiplied
    by `exp(drift * i * z)`, `z` being the zone's centroid latitude standardized over zones 1..263 (pickups move
    north). With `drift` = 0 all months are drawn from the same distribution.

    Args:
        rows: total number of trips, over all months.
        months: the months to write, one file each.
        out: folder for the files (created if missing).
        seed: non-negative seed; each (seed, month, chunk) has its own random stream.
        service: `green` (lpep_ columns) or `yellow` (tpep_ columns).
        dirty: share of rows given each kind of real-world dirt; `DirtyShares.clean()` for none.
        drift: month-to-month change of the distribution, see above; 0 for none.
        chunk_rows: trips generated and written at a time (one Parquet row group each).
        on_progress: called after each chunk with the number of trips it just wrote.

    Returns:
        The paths written, in month order.

    Raises:
        UsageError: an unknown service, no months, or a negative `rows`, `seed`, `drift` or `chunk_rows` < 1.
    """
    target = schema(service)
    if not months or rows < 0 or seed < 0 or drift < 0 or chunk_rows < 1:
        raise UsageError("generate needs months, rows >= 0, seed >= 0, drift >= 0 and chunk_rows >= 1")
    p = load_profile()
    plans = [plan_month(p, m, i, drift) for i, m in enumerate(sorted(set(months)))]
    sizes = _chunk_sizes(rows, len(plans), chunk_rows)
    jobs = _chunk_jobs(p, plans, sizes, seed, service, dirty)
    # One worker thread: numpy and the Parquet writer release the GIL, so generating chunk k + 1 overlaps
    # writing chunk k, with at most two chunks in memory.
    with ThreadPoolExecutor(max_workers=1) as pool:
        tables = _prefetched(pool, jobs)
        try:
            return [
                _write_month(
                    Path(out) / f"{service}_tripdata_{plan.month}.parquet", target, tables, month_sizes, on_progress
                )
                for plan, month_sizes in zip(plans, sizes, strict=True)
            ]
        finally:
            tables.close()


def _chunk_jobs(
    p: Profile, plans: list[MonthPlan], sizes: list[list[int]], seed: int, service: str, dirty: DirtyShares
) -> list[Callable[[], pa.Table]]:
    """One job a chunk, making its table, in the order the files are written."""
    return [
        partial(_chunk, p, plan, seed, k, size, service, dirty)
        for plan, month_sizes in zip(plans, sizes, strict=True)
        for k, size in enumerate(month_sizes)
    ]


def _chunk_sizes(rows: int, months: int, chunk_rows: int) -> list[list[int]]:
    """The size of each chunk of each month: `rows` spread evenly over the `months`, the first ones one more."""
    per_month = [rows // months + (i < rows % months) for i in range(months)]
    return [[min(chunk_rows, n - s) for s in range(0, n, chunk_rows)] for n in per_month]


def _write_month(
    path: Path,
    target: pa.Schema,
    tables: Generator[pa.Table],
    sizes: list[int],
    on_progress: Callable[[int], None] | None,
) -> Path:
    """Write the next `len(sizes)` chunks of `tables` to `path`, one row group each, whole or not at all."""
    dictionary = [f.name for f in target if not pa.types.is_timestamp(f.type)]
    with atomic_file(path) as tmp, pq.ParquetWriter(tmp, target, use_dictionary=dictionary, **COMPRESSION) as writer:
        for size in sizes:
            writer.write_table(next(tables), row_group_size=size)
            if on_progress is not None:
                on_progress(size)
    return path
