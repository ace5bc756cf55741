"""The baselines: the course's published number reproduced on the real files, and sane on small data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taxi_duration.baselines import CourseBaseline, GlobalMean
from taxi_duration.config import Engine, load_settings
from taxi_duration.engines import Runtime
from taxi_duration.evaluate import metrics
from taxi_duration.features import STRAIGHT_MILES, TARGET, featurize, in_target_range
from taxi_duration.inputs import check_all
from taxi_duration.readers import read_trips


def trips(rows: list[tuple[int, int, float, float]], straight: float = np.nan) -> pd.DataFrame:
    """Trips of (pickup zone, dropoff zone, metered miles, minutes), all `straight` miles as the crow flies."""
    frame = pd.DataFrame(rows, columns=["pu_location_id", "do_location_id", "trip_distance", TARGET])
    return frame.assign(**{STRAIGHT_MILES: straight})


def test_course_baseline_learns_distance_and_pairs() -> None:
    rng = np.random.default_rng(0)
    distance = rng.uniform(0.5, 10, 500)
    pair = rng.integers(0, 2, 500)
    train = trips([(74, 75 + p, d, 3 * d + 5 * p) for p, d in zip(pair, distance, strict=True)])
    model = CourseBaseline().fit(train)
    predicted = model.predict(trips([(74, 75, 2.0, 0.0), (74, 76, 2.0, 0.0), (74, 75, 4.0, 0.0)]))
    assert predicted == pytest.approx([6.0, 11.0, 12.0], abs=1e-6)
    assert GlobalMean().fit(train).predict(train).tolist() == [train[TARGET].mean()] * 500


def test_course_baseline_takes_the_straight_line_only_where_there_is_no_meter() -> None:
    rng = np.random.default_rng(0)
    metered = trips([(74, 75, d, 3 * d) for d in rng.uniform(0.5, 10, 200)], straight=100.0)
    unmetered = metered.assign(**{STRAIGHT_MILES: metered["trip_distance"], "trip_distance": np.nan})
    asked = trips([(74, 75, 2.0, 0.0)], straight=100.0)  # the meter wins over the straight line
    for train in (metered, unmetered):
        assert CourseBaseline().fit(train).predict(asked) == pytest.approx([6.0], abs=1e-6)


@pytest.mark.shared
def test_course_baseline_reproduces_the_published_rmse(shared_data: Path) -> None:
    runtime = Runtime.open(load_settings(), Engine.DUCKDB)

    def month(name: str) -> pd.DataFrame:
        frame = featurize(runtime, read_trips(runtime, check_all([shared_data / f"green_tripdata_{name}.parquet"])))
        return frame.filter(in_target_range()).collect().to_pandas()

    train, val = month("2021-01"), month("2021-02")
    rmse = metrics(val[TARGET], CourseBaseline().fit(train).predict(val))["rmse"]
    assert rmse == pytest.approx(7.759, abs=0.005)  # the figure the course publishes
