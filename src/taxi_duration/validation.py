"""Veracity: the rules for what real TLC data gets wrong, declared once, run on any engine.

A row is either repaired by a stated rule (recorded in its `repairs` column) or quarantined with every
reason it breaks (its `reasons` column). Nothing is dropped: clean + quarantined = input, always.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import narwhals as nw

from taxi_duration import schema as s
from taxi_duration.engines import Runtime

REPAIRS_COL = "repairs"
DURATION_COL = "_duration_s"
DUPLICATE_RANK_COL = "_copy_number"

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


def _outside(name: str, low: float, high: float) -> nw.Expr:
    return (nw.col(name) < low) | (nw.col(name) > high)


def last_day() -> date:
    """The last pickup day that is not in the future: today in New York plus the clock allowance."""
    return (datetime.now(ZoneInfo(s.TIME_ZONE)) + CLOCK_ALLOWANCE).date()


def _day_number(day: date) -> int:
    return day.year * 10_000 + day.month * 100 + day.day


def _pickup_day() -> nw.Expr:
    # Days as YYYYMMDD integers: every engine compares those alike, where a timestamp literal would meet
    # Spark's session time zone.
    pickup = nw.col(s.PICKUP).dt
    return pickup.year() * 10_000 + pickup.month() * 100 + pickup.day()


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
        lambda: (_pickup_day() < _day_number(FIRST_DAY)) | (_pickup_day() > _day_number(last_day())),
    ),
    Rule(
        "unknown_zone",
        f"pickup or dropoff zone outside {KNOWN_ZONES[0]}..{KNOWN_ZONES[1]} (264/265 are unknown/outside NYC)",
        lambda: _outside(s.PU_ZONE, *KNOWN_ZONES) | _outside(s.DO_ZONE, *KNOWN_ZONES),
    ),
    Rule("non_positive_distance", "trip_distance is 0 or negative", lambda: nw.col(s.DISTANCE) <= 0),
    Rule(
        "huge_distance", f"trip_distance over {MAX_DISTANCE_MI:g} miles", lambda: nw.col(s.DISTANCE) > MAX_DISTANCE_MI
    ),
    Rule(
        "impossible_speed",
        f"average speed over {MAX_SPEED_MPH:g} mph",
        # Multiplied out rather than divided, so a zero duration cannot divide by zero on any engine.
        lambda: (nw.col(DURATION_COL) > 0) & (nw.col(s.DISTANCE) * 3600 > MAX_SPEED_MPH * nw.col(DURATION_COL)),
    ),
    Rule(
        "bad_passenger_count",
        f"passenger_count negative or over {MAX_PASSENGERS}",
        lambda: _outside(s.PASSENGERS, 0, MAX_PASSENGERS),
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

RULE_CODES: tuple[str, ...] = tuple(r.code for r in RULES)
REPAIR_CODES: tuple[str, ...] = tuple(r.code for r in REPAIRS)
SEPARATOR = ","


def flag(runtime: Runtime, trips: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Apply repairs, then every rule: the canonical columns plus `reasons` and `repairs` (null when none)."""
    trips = runtime.seconds_between(trips, s.PICKUP, s.DROPOFF, DURATION_COL)
    # Ranked before any repair, so "exact copy" means exact in the source.
    trips = trips.with_columns(nw.col(s.PICKUP).rank(method="ordinal").over(*s.TRIP_FIELDS).alias(DUPLICATE_RANK_COL))
    trips = apply_repairs(trips.with_columns(_codes([(r.code, r.applies()) for r in REPAIRS]).alias(REPAIRS_COL)))
    trips = trips.with_columns(_codes([(r.code, r.broken()) for r in RULES]).alias(s.REASONS))
    return trips.select(*s.NAMES, s.REASONS, REPAIRS_COL)


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
