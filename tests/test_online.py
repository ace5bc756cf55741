"""The fast feature path knows every pickup hour from load: what it remembers per calendar hour is what the
definitions compute, on any day of any year a request may bring."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from taxi_duration.core import schema as s
from taxi_duration.features.definitions import FEATURES, HOLIDAY_YEARS, TIME, holiday_keys
from taxi_duration.serve.online import FastFeatures, features_table, trips_table

TIME_FEATURES = tuple(f.name for f in FEATURES if f.reads == TIME)


@pytest.fixture(scope="module")
def fast() -> FastFeatures:
    return FastFeatures()


def pickups(n: int, seed: int) -> list[datetime]:
    """Any second from 2009 to the last holiday year, every holiday at a random hour, and New Year's Eve."""
    rng = np.random.default_rng(seed)
    first, last = datetime(HOLIDAY_YEARS[0], 1, 1), datetime(HOLIDAY_YEARS[-1] + 1, 1, 1)
    seconds = rng.integers(0, int((last - first).total_seconds()), n)
    anywhere = [first + timedelta(seconds=int(x)) for x in seconds]
    days = [date(k // 10_000, k // 100 % 100, k % 100) for k in holiday_keys()]
    hours = rng.integers(0, 24, len(days))
    holidays = [datetime(d.year, d.month, d.day, int(h)) for d, h in zip(days, hours, strict=True)]
    return [*anywhere, *holidays, datetime(2024, 12, 31, 23, 59, 59)]


def trip(pickup: datetime) -> dict[str, Any]:
    return {s.PICKUP: pickup, s.PU_ZONE: 74, s.DO_ZONE: 236, s.PASSENGERS: 1, s.DISTANCE: 2.4, s.VENDOR: 2}


def test_every_pickup_hour_is_known_at_load(fast: FastFeatures) -> None:
    # Before, each new hour cost an evaluation inside the request: a batch over many new hours froze the API.
    assert fast.recall([trip(p) for p in pickups(2_000, seed=3)]) is not None


def test_time_features_from_memory_are_what_the_definitions_give(fast: FastFeatures) -> None:
    trips = [trip(p) for p in pickups(3_000, seed=5)]
    expected = features_table(trips_table(pd.DataFrame(trips))).to_pylist()
    got = fast.many(trips)
    for e, g, t in zip(expected, got, trips, strict=True):
        assert {n: g[n] for n in TIME_FEATURES} == {n: e[n] for n in TIME_FEATURES}, t[s.PICKUP]
    assert {g["is_holiday"] for g in got} == {0, 1}


def test_new_trips_in_one_call_are_evaluated_together(fast: FastFeatures) -> None:
    odd = [{**trip(datetime(2019, 5, 1, 8)), s.DISTANCE: 1 + i / 1000, s.VENDOR: 50 + i % 40} for i in range(500)]
    assert fast.recall(odd) is None
    rows = fast.many(odd)
    assert [r[s.DISTANCE] for r in rows] == [t[s.DISTANCE] for t in odd]
    assert fast.recall(odd) == rows
