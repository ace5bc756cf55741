"""Synthetic NYC TLC trip files at any scale, drawn from a profile measured on real green taxi data.

A chunk of trips is made in five vectorized steps (no Python loop runs per row):
1. zone pair: one categorical draw over the top real pairs plus, per pickup zone, an "elsewhere" bucket whose
   dropoff comes from a gravity model (where that borough's other trips went, discounted by distance);
2. pickup time: an hour of the month drawn with the real trip rate of its hour of week, then a uniform second;
3. distance: the pair's real median miles (outside the top pairs: centroid haversine x detour factor) times
   empirical noise;
4. duration: miles / speed, with speed = hour-of-week mph x (miles / ref) ** beta x pair factor x empirical
   noise, kept within 1 min..3 h and under 80 mph;
5. fares and the other columns from their real distributions, then the dirt of `DirtyShares`.

The profile is `taxi_duration/geo/data/calibration.json` (see `docs/calibration.md`). Yellow files reuse the green
profile under yellow column names: only the header tells them apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, fields, replace
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
from taxi_duration.geo.calibration import N_ZONES, Alias, Profile, load_profile

SERVICES = ("green", "yellow")
# Measured on 8M rows (2 cores): zstd level 1, snappy and lz4 all ran at 2.8-2.9M rows/s (the CPU, not the
# codec, is the limit) and zstd wrote 15% smaller files. Timestamps are near-unique: a dictionary only costs.
COMPRESSION = {"compression": "zstd", "compression_level": 1}
_DAY = 86_400
_FLAGS = pa.array(["N", "Y"], pa.large_string())
# Money columns, negated together by `negative_fare` the way real refunds are.
_MONEY = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge")
_MONEY_TAIL = ("congestion_surcharge", "Airport_fee", "total_amount")
# Nullable columns the real files leave empty together (when the trip came from a street-hail app).
_NULL_BLOCK = (
    *("passenger_count", "RatecodeID", "payment_type", "trip_type"),
    *("congestion_surcharge", "store_and_fwd_flag", "Airport_fee"),
)
_INT_TYPES = {"VendorID": pa.int32(), "PULocationID": pa.int32(), "DOLocationID": pa.int32()}
_INT_TYPES |= dict.fromkeys(("passenger_count", "RatecodeID", "payment_type", "trip_type"), pa.int64())
# TLC column order; `pickup` and `dropoff` get the service's prefix.
_GREEN = (
    *("VendorID", "pickup", "dropoff", "store_and_fwd_flag", "RatecodeID", "PULocationID", "DOLocationID"),
    *("passenger_count", "trip_distance", *_MONEY[:5], "ehail_fee", _MONEY[5], "total_amount"),
    *("payment_type", "trip_type", "congestion_surcharge"),
)
_YELLOW = (
    *("VendorID", "pickup", "dropoff", "passenger_count", "trip_distance", "RatecodeID", "store_and_fwd_flag"),
    *("PULocationID", "DOLocationID", "payment_type", *_MONEY, "total_amount", "congestion_surcharge"),
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


@dataclass(frozen=True)
class DirtyShares:
    """Share of rows (0..1) given each kind of dirt found in real files; defaults roughly match green files.

    Every dirty row has exactly one kind of dirt (duplicates copy a row that may itself be dirty), so the
    shares must sum to at most 1.
    """

    dropoff_before_pickup: float = 0.0005
    under_a_minute: float = 0.02  # 0-59 s: meter tests and cancelled rides (1.5-3.4% of real rows)
    too_long: float = 0.003  # duration > 5 h (meter left on; real files reach ~24 h)
    outside_month: float = 0.0002  # pickup on the last day of the previous month or the first of the next
    unknown_zone: float = 0.015  # pickup or dropoff zone 264 or 265
    zero_distance: float = 0.04
    huge_distance: float = 0.0008  # > 100 miles
    impossible_speed: float = 0.002  # 20-60 miles in 1-5 minutes (> 80 mph average)
    bad_passengers: float = 0.0003  # negative or > 9 passengers
    zero_passengers: float = 0.005  # 0, which validation repairs to 1
    null_block: float = 0.08  # passenger_count, RatecodeID, payment_type, trip_type, ... null together
    null_required: float = 0.0002  # PULocationID, trip_distance or dropoff null
    negative_fare: float = 0.002
    duplicate: float = 0.0005  # an exact copy of another row of the same file

    def __post_init__(self) -> None:
        if any(not 0 <= s <= 1 for s in astuple(self)) or sum(astuple(self)) > 1:
            raise UsageError(f"dirty shares must each be in 0..1 and sum to at most 1: {self}")

    @classmethod
    def clean(cls) -> DirtyShares:
        """No dirt at all."""
        return cls(*(0.0 for _ in fields(cls)))

    def scaled(self, factor: float) -> DirtyShares:
        """Every share multiplied by `factor` (UsageError if they would sum past 1)."""
        return replace(self, **{f.name: getattr(self, f.name) * factor for f in fields(self)})


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


@dataclass(frozen=True)
class _MonthPlan:
    """What a month's chunks share: its calendar, its pair distribution and its traffic."""

    month: Month
    start_s: int  # epoch seconds of the 1st at 00:00 (naive local time, as in the TLC files)
    end_s: int
    hours: Alias  # over the hours of the month
    hour_of_week: np.ndarray  # of each hour of the month, Monday 0h = 0
    pairs: Alias  # over the top pairs, then one "elsewhere" bucket per pickup zone 1..263
    speed_scale: float


def _plan(p: Profile, month: Month, index: int, drift: float) -> _MonthPlan:
    start = np.datetime64(str(month), "M")
    hours = np.arange(start.astype("datetime64[h]"), (start + 1).astype("datetime64[h]")).astype(np.int64)
    how = ((hours // 24 + 3) % 7) * 24 + hours % 24  # 1970-01-01 was a Thursday
    # Drift tilts pickups north: zone weights times exp(drift * index * standardized centroid latitude).
    lat = p.lat[1 : N_ZONES + 1]
    tilt = np.r_[0.0, np.exp(drift * index * (lat - lat.mean()) / lat.std())]
    elsewhere = p.pickup_weights - np.bincount(p.pair_pu, weights=p.pair_trips, minlength=N_ZONES + 1)
    weights = np.r_[p.pair_trips * tilt[p.pair_pu], (elsewhere * tilt)[1:]]
    return _MonthPlan(
        month=month,
        start_s=int(hours[0]) * 3600,
        end_s=(int(hours[-1]) + 1) * 3600,
        hours=Alias.of(p.how_rate[how]),
        hour_of_week=how,
        pairs=Alias.of(weights),
        speed_scale=max(1.0 - drift * index, 0.1),
    )


def _seconds(p: Profile, miles: np.ndarray, log_mph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Durations from distance and typical speed with the real noise, within the calibrated range.

    That range is 1 min..3 h and at most 80 mph, so a clean trip never looks like dirt. Trips that fall outside
    get their noise drawn again rather than clipped, which would pile them on the edge.
    """
    shortest = np.maximum(60, np.ceil(miles * 45))  # 45 s a mile is 80 mph.
    seconds = np.round(miles / np.exp(log_mph + p.noise(p.noise_log_speed, rng.random(len(miles)), miles)) * 3600)
    for _ in range(4):  # Each round redraws ~2% of the previous round's rows.
        out = np.flatnonzero((seconds < shortest) | (seconds > 3 * 3600))
        noise = p.noise(p.noise_log_speed, rng.random(len(out)), miles[out])
        seconds[out] = np.round(miles[out] / np.exp(log_mph[out] + noise) * 3600)
    return np.clip(seconds, shortest, 3 * 3600).astype(np.int64)


def _trips(p: Profile, plan: _MonthPlan, n: int, rng: np.random.Generator, service: str) -> dict[str, np.ndarray]:
    """`n` clean trips of `plan.month` as numpy columns (pickup and dropoff in epoch seconds)."""
    k = len(p.pair_pu)
    cat = plan.pairs.draw(rng.random(n))
    top = cat < k
    pair = np.minimum(cat, k - 1)
    pu = np.where(top, p.pair_pu[pair], cat - k + 1).astype(np.int32)
    do = p.pair_do[pair].copy()
    miles = p.pair_miles[pair].copy()
    log_noise = p.noise(p.noise_log_distance_pair, rng.random(n), miles)
    fb = np.flatnonzero(~top)  # The "elsewhere" rows: dropoff from the gravity model, distance from geometry.
    u = np.minimum(rng.random(len(fb)), 1 - 1e-9) + pu[fb]  # u + z must never round up to z + 1
    do[fb] = np.searchsorted(p.fallback_cdf, u, side="right") - pu[fb] * (N_ZONES + 1)
    miles[fb] = p.geometric_miles(pu[fb], do[fb])
    log_noise[fb] = p.noise(p.noise_log_distance_fallback, rng.random(len(fb)), miles[fb])
    miles = np.clip(np.round(miles * np.exp(log_noise), 2), 0.01, 100.0)

    hour = plan.hours.draw(rng.random(n))
    pickup = plan.start_s + hour * 3600 + rng.integers(0, 3600, n)
    log_mph = (
        np.log(p.how_speed[plan.hour_of_week[hour]] * plan.speed_scale)
        + p.distance_exponent * np.log(miles / p.reference_miles)
        + np.where(top, p.pair_log_speed[pair], 0.0)
    )
    seconds = _seconds(p, miles, log_mph, rng)
    c = {name: dist.sample(rng.random(n)) for name, dist in p.categorical.items()}
    fare = np.round(3 + 2.5 * miles + 0.5 * seconds / 60, 1)
    fees = p.fees
    tip = np.where((c["payment_type"] == 1) & (rng.random(n) < fees["tip_share_card"]), 1.0, 0.0)
    tip = np.round(tip * fare * rng.uniform(0.1, 0.35, n), 2)
    tolls = np.where((miles > 8) & (rng.random(n) < fees["toll_share_long"]), fees["toll_amount"], 0.0)
    manhattan = p.manhattan[pu] | p.manhattan[do]
    share = np.where(manhattan, fees["congestion_share_manhattan"], fees["congestion_share_other"])
    congestion = np.where(rng.random(n) < share, 2.75, 0.0)
    # Since 2023 yellow pickups at JFK and LaGuardia pay a flat airport fee.
    airport = np.where((service == "yellow") & np.isin(pu, (132, 138)), 1.75, 0.0)
    total = fare + c["extra"] + c["mta_tax"] + tip + tolls + c["improvement_surcharge"] + congestion + airport
    return {
        "pickup": pickup,
        "dropoff": pickup + seconds,
        "PULocationID": pu,
        "DOLocationID": do,
        "trip_distance": miles,
        "fare_amount": fare,
        "tip_amount": tip,
        "tolls_amount": tolls,
        "congestion_surcharge": congestion,
        "Airport_fee": airport,
        "total_amount": np.round(total, 2),
        "store_and_fwd_flag": (rng.random(n) < fees["store_and_fwd_share"]).astype(np.int8),
        **c,
    }


def _add_dirt(cols: dict[str, np.ndarray], dirty: DirtyShares, plan: _MonthPlan, rng: np.random.Generator) -> dict:
    """Give each row at most one kind of dirt, in place; return the null masks (True = null)."""
    n = len(cols["pickup"])
    kinds = [f.name for f in fields(DirtyShares)]
    kind = np.searchsorted(np.cumsum(astuple(dirty)), rng.random(n), side="right")
    at = {name: np.flatnonzero(kind == i) for i, name in enumerate(kinds)}
    nulls = {name: np.zeros(n, dtype=bool) for name in ("dropoff", "PULocationID", "trip_distance", *_NULL_BLOCK)}

    def put(col: str, name: str, values: object) -> None:
        cols[col][at[name]] = values

    rows = at["dropoff_before_pickup"]
    put("dropoff", "dropoff_before_pickup", cols["pickup"][rows] - rng.integers(1, 3600, len(rows)))
    rows = at["under_a_minute"]
    seconds = rng.integers(0, 60, len(rows))
    put("dropoff", "under_a_minute", cols["pickup"][rows] + seconds)
    # Short in distance too (at most ~15 mph), as real ones are; too fast is the impossible_speed kind.
    put("trip_distance", "under_a_minute", np.round(rng.uniform(0, 0.25, len(rows)) * seconds / 59, 2))
    rows = at["too_long"]
    put("dropoff", "too_long", cols["pickup"][rows] + rng.integers(5 * 3600 + 1, 24 * 3600, len(rows)))
    rows = at["outside_month"]
    duration = cols["dropoff"][rows] - cols["pickup"][rows]
    day = np.where(rng.random(len(rows)) < 0.5, plan.start_s - _DAY, plan.end_s)
    put("pickup", "outside_month", day + rng.integers(0, _DAY, len(rows)))
    put("dropoff", "outside_month", cols["pickup"][rows] + duration)
    rows = at["unknown_zone"]
    side = rng.random(len(rows)) < 0.5
    cols["PULocationID"][rows[side]] = rng.integers(264, 266, side.sum())
    cols["DOLocationID"][rows[~side]] = rng.integers(264, 266, (~side).sum())
    put("trip_distance", "zero_distance", 0.0)
    # Log-uniform over 100..100,000 miles: real files hold odometer-like values up to ~260,000.
    put("trip_distance", "huge_distance", np.round(10 ** rng.uniform(2.0001, 5, len(at["huge_distance"])), 2))
    rows = at["impossible_speed"]
    put("trip_distance", "impossible_speed", np.round(rng.uniform(20, 60, len(rows)), 2))
    put("dropoff", "impossible_speed", cols["pickup"][rows] + rng.integers(60, 300, len(rows)))
    rows = at["bad_passengers"]
    put(
        "passenger_count", "bad_passengers", np.where(rng.random(len(rows)) < 0.5, -1, rng.integers(10, 100, len(rows)))
    )
    put("passenger_count", "zero_passengers", 0)
    for col in _NULL_BLOCK:
        nulls[col][at["null_block"]] = True
    rows = at["null_required"]
    which = rng.integers(0, 3, len(rows))
    for i, col in enumerate(("PULocationID", "trip_distance", "dropoff")):
        nulls[col][rows[which == i]] = True
    for col in (*_MONEY, *_MONEY_TAIL):
        cols[col][at["negative_fare"]] *= -1
    # Duplicates copy rows that are not themselves duplicates, so each one has an original in the file.
    rows = at["duplicate"]
    if len(rows):
        sources = np.flatnonzero(kind != kinds.index("duplicate"))
        src = sources[rng.integers(0, len(sources), len(rows))]
        for arr in (*cols.values(), *nulls.values()):
            arr[rows] = arr[src]
    return nulls


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


def _chunk(p: Profile, plan: _MonthPlan, seed: int, index: int, n: int, service: str, dirty: DirtyShares) -> pa.Table:
    # One stream per (seed, month, chunk): a chunk is the same whatever the other months or chunks are.
    rng = np.random.default_rng(np.random.SeedSequence([seed, plan.month.yyyymm, index]))
    cols = _trips(p, plan, n, rng, service)
    nulls = _add_dirt(cols, dirty, plan, rng)
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
    months = sorted(set(months))
    per_month = [rows // len(months) + (i < rows % len(months)) for i in range(len(months))]
    plans = [_plan(p, m, i, drift) for i, m in enumerate(months)]
    sizes = [[min(chunk_rows, n - s) for s in range(0, n, chunk_rows)] for n in per_month]
    jobs = [
        partial(_chunk, p, plan, seed, k, size, service, dirty)
        for plan, month_sizes in zip(plans, sizes, strict=True)
        for k, size in enumerate(month_sizes)
    ]
    out = Path(out)
    paths = []
    dictionary = [f.name for f in target if not pa.types.is_timestamp(f.type)]
    # One worker thread: numpy and the Parquet writer release the GIL, so generating chunk k + 1 overlaps
    # writing chunk k, with at most two chunks in memory.
    with ThreadPoolExecutor(max_workers=1) as pool:
        tables = _prefetched(pool, jobs)
        try:
            for plan, month_sizes in zip(plans, sizes, strict=True):
                path = out / f"{service}_tripdata_{plan.month}.parquet"
                with (
                    atomic_file(path) as tmp,
                    pq.ParquetWriter(tmp, target, use_dictionary=dictionary, **COMPRESSION) as writer,
                ):
                    for size in month_sizes:
                        writer.write_table(next(tables), row_group_size=size)
                        if on_progress is not None:
                            on_progress(size)
                paths.append(path)
        finally:
            tables.close()
    return paths
