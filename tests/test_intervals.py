"""The p10-p90 interval: about 80% of unseen trips inside, in every borough, and the same after a JSON trip."""

from __future__ import annotations

import json

import numpy as np

from taxi_duration.serve import intervals


def trips(seed: int, n: int = 20_000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions, actual minutes and boroughs where the Bronx's errors are three times Manhattan's."""
    rng = np.random.default_rng(seed)
    borough = rng.choice(np.array(["Manhattan", "Bronx", "EWR"]), n, p=[0.8, 0.195, 0.005])
    predicted = rng.uniform(3, 50, n)
    spread = np.where(borough == "Bronx", 0.6, 0.2)
    return predicted * np.exp(rng.normal(0, spread)), predicted, borough


def test_each_borough_gets_its_own_interval_and_unseen_trips_are_covered_80_percent_in_each() -> None:
    interval = intervals.fit(*trips(seed=1))
    actual, predicted, borough = trips(seed=2)
    table = interval.coverage_by(actual, predicted, borough)
    assert set(interval.by_borough) == {"Manhattan", "Bronx"}  # 100 EWR trips are too few for their own bins
    for name in ("all", "Manhattan", "Bronx"):
        assert abs(table[name]["coverage"] - 0.8) < 0.02, (name, table[name])
    assert table["Bronx"]["trips"] == np.sum(borough == "Bronx")
    one_for_all = intervals.fit(*trips(seed=1)[:2])
    assert one_for_all.coverage_by(actual, predicted, borough)["Bronx"]["coverage"] < 0.6


def test_an_interval_read_back_from_json_gives_the_same_bounds_for_arrays_and_single_trips() -> None:
    interval = intervals.fit(*trips(seed=1))
    again = intervals.Interval(**json.loads(json.dumps(interval.to_json())))
    _, predicted, borough = trips(seed=3, n=50)
    low, high = again.bounds(predicted, borough)
    assert np.allclose((low, high), interval.bounds(predicted, borough))
    for p, b, lo, hi in zip(predicted, borough, low, high, strict=True):
        assert np.allclose(again.bounds_one(float(p), str(b)), (lo, hi))
    assert np.allclose(again.bounds_one(10.0, "Staten Island"), again.bounds_one(10.0))  # no bins: the overall ones
