"""The dirt of real TLC files, given to synthetic trips: `DirtyShares` (how much of each kind) and `add_dirt`
(which rows get which, at most one kind a row)."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields, replace

import numpy as np

from taxi_duration.core.errors import UsageError
from taxi_duration.ingest.synth_trips import MonthPlan

_DAY = 86_400
# Money columns, negated together by `negative_fare` the way real refunds are.
MONEY = ("fare_amount", "extra", "mta_tax", "tip_amount", "tolls_amount", "improvement_surcharge")
_MONEY_TAIL = ("congestion_surcharge", "Airport_fee", "total_amount")
# Nullable columns the real files leave empty together (when the trip came from a street-hail app).
_NULL_BLOCK = (
    *("passenger_count", "RatecodeID", "payment_type", "trip_type"),
    *("congestion_surcharge", "store_and_fwd_flag", "Airport_fee"),
)


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


def add_dirt(cols: dict[str, np.ndarray], dirty: DirtyShares, plan: MonthPlan, rng: np.random.Generator) -> dict:
    """Give each row at most one kind of dirt, in place; return the null masks (True = null)."""
    n = len(cols["pickup"])
    kinds = [f.name for f in fields(DirtyShares)]
    kind = np.searchsorted(np.cumsum(astuple(dirty)), rng.random(n), side="right")
    at = {name: np.flatnonzero(kind == i) for i, name in enumerate(kinds)}
    nulls = {name: np.zeros(n, dtype=bool) for name in ("dropoff", "PULocationID", "trip_distance", *_NULL_BLOCK)}
    # The kinds draw in this order from one stream: the same seed keeps giving the same bytes.
    _bad_times(cols, at, plan, rng)
    _bad_values(cols, at, rng)
    for col in _NULL_BLOCK:
        nulls[col][at["null_block"]] = True
    rows = at["null_required"]
    which = rng.integers(0, 3, len(rows))
    for i, col in enumerate(("PULocationID", "trip_distance", "dropoff")):
        nulls[col][rows[which == i]] = True
    for col in (*MONEY, *_MONEY_TAIL):
        cols[col][at["negative_fare"]] *= -1
    # Duplicates copy rows that are not themselves duplicates, so each one has an original in the file.
    rows = at["duplicate"]
    if len(rows):
        sources = np.flatnonzero(kind != kinds.index("duplicate"))
        src = sources[rng.integers(0, len(sources), len(rows))]
        for arr in (*cols.values(), *nulls.values()):
            arr[rows] = arr[src]
    return nulls


def _bad_times(
    cols: dict[str, np.ndarray], at: dict[str, np.ndarray], plan: MonthPlan, rng: np.random.Generator
) -> None:
    """The dirt in pickup and dropoff times: backwards, under a minute, over 5 h, outside the file's month."""
    rows = at["dropoff_before_pickup"]
    cols["dropoff"][rows] = cols["pickup"][rows] - rng.integers(1, 3600, len(rows))
    rows = at["under_a_minute"]
    seconds = rng.integers(0, 60, len(rows))
    cols["dropoff"][rows] = cols["pickup"][rows] + seconds
    # Short in distance too (at most ~15 mph), as real ones are; too fast is the impossible_speed kind.
    cols["trip_distance"][rows] = np.round(rng.uniform(0, 0.25, len(rows)) * seconds / 59, 2)
    rows = at["too_long"]
    cols["dropoff"][rows] = cols["pickup"][rows] + rng.integers(5 * 3600 + 1, 24 * 3600, len(rows))
    rows = at["outside_month"]
    duration = cols["dropoff"][rows] - cols["pickup"][rows]
    day = np.where(rng.random(len(rows)) < 0.5, plan.start_s - _DAY, plan.end_s)
    cols["pickup"][rows] = day + rng.integers(0, _DAY, len(rows))
    cols["dropoff"][rows] = cols["pickup"][rows] + duration


def _bad_values(cols: dict[str, np.ndarray], at: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """The dirt in zones, distances, speeds and passenger counts."""
    rows = at["unknown_zone"]
    side = rng.random(len(rows)) < 0.5
    cols["PULocationID"][rows[side]] = rng.integers(264, 266, side.sum())
    cols["DOLocationID"][rows[~side]] = rng.integers(264, 266, (~side).sum())
    cols["trip_distance"][at["zero_distance"]] = 0.0
    # Log-uniform over 100..100,000 miles: real files hold odometer-like values up to ~260,000.
    rows = at["huge_distance"]
    cols["trip_distance"][rows] = np.round(10 ** rng.uniform(2.0001, 5, len(rows)), 2)
    rows = at["impossible_speed"]
    cols["trip_distance"][rows] = np.round(rng.uniform(20, 60, len(rows)), 2)
    cols["dropoff"][rows] = cols["pickup"][rows] + rng.integers(60, 300, len(rows))
    rows = at["bad_passengers"]
    cols["passenger_count"][rows] = np.where(rng.random(len(rows)) < 0.5, -1, rng.integers(10, 100, len(rows)))
    cols["passenger_count"][at["zero_passengers"]] = 0
