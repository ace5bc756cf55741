"""Veracity: the rules for what real TLC data gets wrong, declared once, run on any engine.

A row is either repaired by a stated rule (recorded in its `repairs` column) or quarantined with every
reason it breaks (its `reasons` column). Nothing is dropped: clean + quarantined = input, always.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import narwhals as nw
import numpy as np

from taxi_duration.core import schema as s
from taxi_duration.engines.frames import Runtime

NEW_YORK = ZoneInfo(s.TIME_ZONE)

REPAIRS_COL = "repairs"
DURATION_COL = "_duration_s"
DUPLICATE_RANK_COL = "_copy_number"
_TRIP_HASH_COL, _SEEN_COL = "_trip_hash", "_seen"
# The duplicate check's hash leaves out the zones: a file with coordinates derives them from its coordinates by
# a point-in-polygon lookup (about 10 us a row) that the hash pass would otherwise run too. Rows that differ
# only in zones share a hash and are told apart by the numbering, which reads every trip field.
_HASHED_FIELDS = tuple(c for c in s.TRIP_FIELDS if c not in s.ZONES)

MIN_DURATION_S = 60  # a paid trip under a minute is a meter test or a cancelled ride
MAX_DURATION_S = 5 * 3600  # longer means the meter was left running (real files reach 24 h)
MAX_DISTANCE_MI = 100.0  # the TLC's own sanity bound; real files hold 259,777-mile trips
MAX_SPEED_MPH = 80.0  # average over the whole trip, far above NYC limits
MAX_PASSENGERS = 9
KNOWN_ZONES = (1, 263)  # 264 "Unknown" and 265 "Outside of NYC" carry no place
FIRST_DAY = date(2009, 1, 1)  # the first month of TLC trip records: an earlier pickup is a clock at zero (1970)
# A trip cannot be picked up in the future, but clocks can be off: an event stamped in UTC instead of New York
# time is 4-5 h ahead, a meter set by hand may be a few hours out. A day covers these and still catches a
# year typed wrong (2099, 2032); compared by day, the pickup may be any time up to the end of tomorrow.
CLOCK_ALLOWANCE = timedelta(days=1)
# A trip request (the API, the stream) is known before it happens: it may be booked up to a year ahead.
BOOKING_AHEAD = timedelta(days=366)


@dataclass(frozen=True)
class Rule:
    """A quarantine rule: `broken()` is true on rows that break it (null counts as not broken)."""

    code: str
    description: str
    broken: Callable[[], nw.Expr]


@dataclass(frozen=True)
class Repair:
    """A repair: where `applies()` is true, `column` is set to `value` and the row stays clean."""

    code: str
    description: str
    column: str
    applies: Callable[[], nw.Expr]
    value: Any


@dataclass(frozen=True)
class Bound:
    """Where a field of a trip must lie: one declaration read by the batch rule (a narwhals expression) and
    by the check of a trip request (numpy over a few values, where an expression would cost milliseconds).
    A null breaks no bound: a missing value is its own reason."""

    columns: tuple[str, ...]
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the low end itself is outside (a distance must be above 0)

    def broken(self) -> nw.Expr:
        """True on rows where any of the columns lies outside."""
        return nw.any_horizontal(*(self._outside(nw.col(c)) for c in self.columns), ignore_nulls=True)

    def broken_values(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The same test over arrays (None or NaN for a missing value)."""
        outside = [self._outside(np.asarray(columns[c], dtype=np.float64)) for c in self.columns]
        return np.logical_or.reduce(outside)

    def broken_by(self, trip: Mapping[str, Any]) -> bool:
        """The same test for one trip (a dict), in plain Python: microseconds where numpy costs tens."""
        return any(v is not None and v == v and self._outside(v) for v in (trip.get(c) for c in self.columns))

    def _outside(self, value: Any) -> Any:
        tests = []
        if self.low is not None:
            tests.append(value <= self.low if self.low_open else value < self.low)
        if self.high is not None:
            tests.append(value > self.high)
        return tests[0] if len(tests) == 1 else tests[0] | tests[1]


ZONE_BOUND = Bound(s.ZONES, *KNOWN_ZONES)
POSITIVE_DISTANCE = Bound((s.DISTANCE,), low=0, low_open=True)
DISTANCE_BOUND = Bound((s.DISTANCE,), high=MAX_DISTANCE_MI)
PASSENGER_BOUND = Bound((s.PASSENGERS,), 0, MAX_PASSENGERS)


@dataclass(frozen=True)
class PickupWindow:
    """The days a pickup may fall on, both ends included: New York calendar days, as TLC files keep time."""

    first: date
    last: date

    def holds(self, day: date) -> bool:
        """Whether a pickup on `day` lies in the window."""
        return self.first <= day <= self.last


def pickup_window(ahead: timedelta, now: datetime | None = None) -> PickupWindow:
    """From the first TLC records to `ahead` past today in New York, at `now` (an aware time; by default the
    clock). Today is New York's whatever the process's own zone, and `ahead` is counted in calendar days, so
    a day of 23 or 25 hours (a DST change) moves the window by one day like any other."""
    today = (datetime.now(UTC) if now is None else now).astimezone(NEW_YORK).date()
    return PickupWindow(FIRST_DAY, today + timedelta(days=ahead.days))


def last_day(now: datetime | None = None) -> date:
    """The last pickup day that is not in the future (the batch rule): today in New York plus the clock
    allowance."""
    return pickup_window(CLOCK_ALLOWANCE, now).last


def booking_window(now: datetime | None = None) -> PickupWindow:
    """The days a trip request may be picked up on (the API, `predict`, the stream): up to `BOOKING_AHEAD`."""
    return pickup_window(BOOKING_AHEAD, now)


def _day_number(day: date) -> int:
    return day.year * 10_000 + day.month * 100 + day.day


def _pickup_day() -> nw.Expr:
    # Days as YYYYMMDD integers: every engine compares those alike, where a timestamp literal would meet
    # Spark's session time zone.
    pickup = nw.col(s.PICKUP).dt
    return pickup.year() * 10_000 + pickup.month() * 100 + pickup.day()


def _pickup_outside(window: PickupWindow) -> nw.Expr:
    return (_pickup_day() < _day_number(window.first)) | (_pickup_day() > _day_number(window.last))


REPAIRS: tuple[Repair, ...] = (
    Repair(
        "passenger_count_defaulted",
        "passenger_count missing or 0 (not entered by the driver) is set to 1, the TLC's most common value",
        s.PASSENGERS,
        lambda: nw.col(s.PASSENGERS).is_null() | (nw.col(s.PASSENGERS) == 0),
        1,
    ),
)

RULES: tuple[Rule, ...] = (
    Rule(
        "missing_required",
        f"a required field is null ({', '.join(s.REQUIRED)}), or both the trip_distance and the coordinates are",
        lambda: (
            nw.any_horizontal(*(nw.col(c).is_null() for c in s.REQUIRED), ignore_nulls=False)
            | (nw.col(s.DISTANCE).is_null() & nw.col(s.PU_LON).is_null())
        ),
    ),
    Rule("dropoff_before_pickup", "dropoff time earlier than pickup time", lambda: nw.col(DURATION_COL) < 0),
    Rule(
        "duration_too_short",
        f"trip shorter than {MIN_DURATION_S} s (and not negative)",
        lambda: (nw.col(DURATION_COL) >= 0) & (nw.col(DURATION_COL) < MIN_DURATION_S),
    ),
    Rule(
        "duration_too_long",
        f"trip longer than {MAX_DURATION_S // 3600} h",
        lambda: nw.col(DURATION_COL) > MAX_DURATION_S,
    ),
    Rule(
        "pickup_outside_month",
        "pickup not in the month the file name claims",
        lambda: (nw.col(s.PICKUP).dt.year() * 100 + nw.col(s.PICKUP).dt.month()) != nw.col(s.SOURCE_MONTH),
    ),
    Rule(
        "pickup_out_of_range",
        f"pickup before {FIRST_DAY} (the first TLC records) or after tomorrow in New York (the future, with a "
        f"day's allowance for clocks)",
        lambda: _pickup_outside(pickup_window(CLOCK_ALLOWANCE)),
    ),
    Rule(
        "unknown_zone",
        f"pickup or dropoff zone outside {KNOWN_ZONES[0]}..{KNOWN_ZONES[1]} (264/265 are unknown/outside NYC)",
        ZONE_BOUND.broken,
    ),
    Rule("non_positive_distance", "trip_distance is 0 or negative", POSITIVE_DISTANCE.broken),
    Rule("huge_distance", f"trip_distance over {MAX_DISTANCE_MI:g} miles", DISTANCE_BOUND.broken),
    Rule(
        "impossible_speed",
        f"average speed over {MAX_SPEED_MPH:g} mph",
        # Multiplied out rather than divided, so a zero duration cannot divide by zero on any engine.
        lambda: (nw.col(DURATION_COL) > 0) & (nw.col(s.DISTANCE) * 3600 > MAX_SPEED_MPH * nw.col(DURATION_COL)),
    ),
    Rule(
        "bad_passenger_count",
        f"passenger_count negative or over {MAX_PASSENGERS}",
        PASSENGER_BOUND.broken,
    ),
    Rule("negative_fare", "fare_amount below zero (refunds and voids)", lambda: nw.col(s.FARE) < 0),
    Rule(
        "duplicate",
        "exact copy of an earlier row (same trip fields); the first copy stays",
        lambda: nw.col(DUPLICATE_RANK_COL) > 1,
    ),
)

# A JSON-lines line that is not a JSON object never becomes a row: it is quarantined by file and line number.
UNREADABLE_LINE = "unreadable_line"
UNREADABLE_LINE_RULE = "a JSON-lines line that is not a JSON object (bad JSON or UTF-8, an array, a number)"
# Every reason a row or line is quarantined for, with its rule: a row may have several, a line only this one.
REASON_RULES: dict[str, str] = {r.code: r.description for r in RULES} | {UNREADABLE_LINE: UNREADABLE_LINE_RULE}

# A trip request (the API, `predict`, the stream, the pyfunc) has no dropoff, fare or file: it is held to the
# rules that read what a request carries, by `request_problems`, before any feature is computed.
REQUEST_BOUNDS: dict[str, Bound] = {
    "unknown_zone": ZONE_BOUND,
    "non_positive_distance": POSITIVE_DISTANCE,
    "huge_distance": DISTANCE_BOUND,
    "bad_passenger_count": PASSENGER_BOUND,
}
BOOKING_OUT_OF_RANGE = "pickup_out_of_range"


# What a model may require of a request (`Bundle.required_inputs`): a request without one is refused for it.
REQUIRABLE: tuple[str, ...] = (s.PICKUP, *s.ZONES, s.DISTANCE)


def missing(column: str) -> str:
    """The reason a request without `column` gets no prediction."""
    return f"no {column}"


# Every reason `request_problems` may give a request: each caller's refusal of one is keyed by these.
REQUEST_CODES: tuple[str, ...] = (*(missing(c) for c in REQUIRABLE), BOOKING_OUT_OF_RANGE, *REQUEST_BOUNDS)


def request_problems(columns: Mapping[str, Any], required: Sequence[str]) -> list[str | None]:
    """Why each trip request cannot be predicted (its reasons, comma-joined), or None where it can.

    `columns` maps canonical names to arrays (a missing value is None, NaN or NaT): the `required` columns,
    the pickup time and the bounded fields. A request may be booked up to `BOOKING_AHEAD` from today (`booking_window`).
    """
    pickup = np.asarray(columns[s.PICKUP], dtype="datetime64[D]")
    window = booking_window()
    found = [(missing(c), _absent(columns[c])) for c in required]
    found.append((BOOKING_OUT_OF_RANGE, (pickup < np.datetime64(window.first)) | (pickup > np.datetime64(window.last))))
    found += [(code, bound.broken_values(columns)) for code, bound in REQUEST_BOUNDS.items()]
    hits = np.column_stack([mask for _, mask in found])
    return [
        SEPARATOR.join(code for (code, _), hit in zip(found, row, strict=True) if hit) if row.any() else None
        for row in hits
    ]


def trip_problems(trips: Sequence[Mapping[str, Any]], required: Sequence[str]) -> list[str | None]:
    """`request_problems` for a few canonical trips (dicts, pickup a naive `datetime`), in plain Python: what
    the API runs for every request, where a numpy pass would cost more than the model."""
    window = booking_window()
    out: list[str | None] = []
    for trip in trips:
        codes = [missing(c) for c in required if trip.get(c) is None or trip[c] != trip[c]]
        pickup = trip.get(s.PICKUP)
        if pickup is not None and not window.holds(pickup.date()):
            codes.append(BOOKING_OUT_OF_RANGE)
        codes += [code for code, bound in REQUEST_BOUNDS.items() if bound.broken_by(trip)]
        out.append(SEPARATOR.join(codes) if codes else None)
    return out


def _absent(values: Any) -> np.ndarray:
    array = np.asarray(values)  # times, or numbers (None and NaN both become NaN as floats)
    return np.isnat(array) if array.dtype.kind in "mM" else np.isnan(np.asarray(values, dtype=np.float64))


RULE_CODES: tuple[str, ...] = tuple(r.code for r in RULES)
REPAIR_CODES: tuple[str, ...] = tuple(r.code for r in REPAIRS)
SEPARATOR = ","


def flag(runtime: Runtime, trips: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Apply repairs, then every rule: the canonical columns plus `reasons` and `repairs` (null when none).

    Lazy but for the duplicate check's hash pass, which reads `trips` once now (`number_copies`)."""
    trips = runtime.seconds_between(trips, s.PICKUP, s.DROPOFF, DURATION_COL)
    # Numbered before any repair, so "exact copy" means exact in the source.
    trips = number_copies(runtime, trips)
    trips = apply_repairs(trips.with_columns(_codes([(r.code, r.applies()) for r in REPAIRS]).alias(REPAIRS_COL)))
    trips = trips.with_columns(_codes([(r.code, r.broken()) for r in RULES]).alias(s.REASONS))
    return trips.select(*s.NAMES, s.REASONS, REPAIRS_COL)


def number_copies(runtime: Runtime, trips: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Add `DUPLICATE_RANK_COL`: 1 on a trip's first copy, 2, 3, ... on the others (`TRIP_FIELDS` equal,
    nulls in the same places); which copy is first is left to the engine, as copies are exact.

    A window over every trip would hold the whole table in memory (on DuckDB, 3.7 GiB at 10M rows). Copies
    share a hash of their trip fields, so the hashes seen more than once (a group-by on one integer; few, as
    copies are rare) are collected, and only the rows carrying one are numbered, by their full trip fields:
    a hash collision can never make two different trips copies. Every other row is its trip's only copy.
    """
    rank = nw.col(s.PICKUP).rank(method="ordinal").over(*s.TRIP_FIELDS).cast(nw.Int64()).alias(DUPLICATE_RANK_COL)
    hashed = runtime.with_hash(trips, _HASHED_FIELDS, _TRIP_HASH_COL)
    seen = hashed.group_by(_TRIP_HASH_COL).agg(nw.len().alias(_SEEN_COL))
    # Collected, so the input is read twice (hashes, then the job) and not once more per join below; under
    # the spill bound `quality.validate` runs in, the group-by does not grow with the rows.
    repeated = seen.filter(nw.col(_SEEN_COL) > 1).select(_TRIP_HASH_COL).collect().to_arrow()
    shared = runtime.from_arrow(repeated)
    copies = hashed.join(shared, on=_TRIP_HASH_COL, how="semi").with_columns(rank)
    singles = hashed.join(shared, on=_TRIP_HASH_COL, how="anti").with_columns(
        nw.lit(1, dtype=nw.Int64()).alias(DUPLICATE_RANK_COL)
    )
    return nw.concat([singles, copies], how="vertical").drop(_TRIP_HASH_COL)


def apply_repairs(trips: Any) -> Any:
    """Apply every repair to a frame of canonical trips (lazy or eager): the batch and online paths share it."""
    return trips.with_columns(
        *(nw.when(r.applies()).then(nw.lit(r.value)).otherwise(nw.col(r.column)).alias(r.column) for r in REPAIRS),
    ).with_columns(*(nw.col(r.column).cast(s.BY_NAME[r.column].dtype) for r in REPAIRS))


def _codes(named: list[tuple[str, nw.Expr]]) -> nw.Expr:
    """Comma-joined codes whose condition holds (null conditions count as false), null when none hold."""
    joined = nw.concat_str(
        [nw.when(cond.fill_null(False)).then(nw.lit(code)) for code, cond in named],
        separator=SEPARATOR,
        ignore_nulls=True,
    )
    return nw.when(joined != "").then(joined)


def split_codes(codes: str | None) -> list[str]:
    """The codes in a `reasons` or `repairs` value."""
    return codes.split(SEPARATOR) if codes else []
