"""The baselines: the course's published number reproduced on the real files, and sane on small data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import OneHotEncoder

from taxi_duration.core.config import Engine, load_settings
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import STRAIGHT_MILES, TARGET, featurize, in_target_range
from taxi_duration.ingest.inputs import check_all
from taxi_duration.ingest.readers import read_trips
from taxi_duration.train.baselines import CourseBaseline, GlobalMean, PairSums
from taxi_duration.train.metrics import metrics


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


def test_course_design_is_the_one_hot_encoders_matrix_beside_the_miles() -> None:
    rng = np.random.default_rng(1)
    train = trips(
        [(74, int(z), float(d), 1.0) for z, d in zip(rng.integers(75, 90, 300), rng.uniform(0, 5, 300), strict=True)]
    )
    model = CourseBaseline().fit(train)
    asked = trips(
        [(74, 80, 0.0, 0.0), (74, 99, 3.5, 0.0), (1, 1, 0.0, 0.0), (74, 75, 1.25, 0.0)]
    )  # unknown, zero miles
    pairs, miles = model._inputs(asked)
    expected = sparse.hstack(
        [model.encoder.transform(pairs.reshape(-1, 1)), sparse.csr_matrix(miles.reshape(-1, 1))], format="csr"
    )
    design = model._design(pairs, miles)
    assert design.shape == expected.shape
    for part in ("indptr", "indices", "data"):
        assert getattr(design, part).tolist() == getattr(expected, part).tolist()


def test_course_baseline_fitted_batch_by_batch_is_the_courses_fit_on_all_rows_digit_for_digit() -> None:
    rng = np.random.default_rng(2)
    zones, distance = rng.integers(1, 40, (2, 3000)), rng.uniform(0.2, 12, 3000)
    train = trips([(int(a), int(b), float(d), 2.5 * d + a % 7) for a, b, d in zip(*zones, distance, strict=True)])
    batched = CourseBaseline().fit_batches(train.iloc[i : i + 1000] for i in range(0, 3000, 1000))
    pairs = (zones[0] * 10_000 + zones[1]).reshape(-1, 1)  # the course's matrix, built the course's way
    design = sparse.hstack([OneHotEncoder().fit_transform(pairs), sparse.csr_matrix(distance.reshape(-1, 1))])
    course = LinearRegression().fit(design.tocsr(), train[TARGET].to_numpy())
    assert np.array_equal(batched.model.coef_, course.coef_)
    assert batched.model.intercept_ == course.intercept_


@pytest.mark.shared
def test_course_baseline_reproduces_the_published_rmse(shared_data: Path) -> None:
    runtime = Runtime.open(load_settings(), Engine.DUCKDB)

    def month(name: str) -> pd.DataFrame:
        frame = featurize(runtime, read_trips(runtime, check_all([shared_data / f"green_tripdata_{name}.parquet"])))
        return frame.filter(in_target_range()).collect().to_pandas()

    train, val = month("2021-01"), month("2021-02")
    rmse = metrics(val[TARGET], CourseBaseline().fit(train).predict(val))["rmse"]
    assert rmse == pytest.approx(7.759, abs=0.005)  # the figure the course publishes


def test_the_ridge_from_pair_sums_minimizes_mllibs_objective() -> None:
    rng = np.random.default_rng(3)
    pairs = rng.integers(0, 40, 2_000)
    miles = rng.gamma(2.0, 1.5, 2_000)
    minutes = 4 + rng.normal(0, 3, 40)[pairs] + 2.5 * miles + rng.normal(0, 2, 2_000)
    sums = PairSums(
        *(
            np.bincount(pairs, weights=w, minlength=40)
            for w in (np.ones_like(miles), miles, minutes, miles**2, miles * minutes, minutes**2)
        )
    )
    intercept, terms, per_mile = sums.ridge(0.05)
    # The same objective written out: 1/(2N) |y - X theta|^2 + lam/2 |theta without the intercept|^2.
    design = np.column_stack([np.ones_like(miles), np.eye(40)[pairs], miles])
    lam = 0.05 / minutes.std(ddof=1)
    penalty = np.diag([0.0, *([lam] * 41)])
    theta = np.linalg.solve(design.T @ design / len(miles) + penalty, design.T @ minutes / len(miles))
    assert [intercept, *terms, per_mile] == pytest.approx(theta.tolist(), rel=1e-9, abs=1e-9)


def test_the_ridge_of_a_constant_label_is_its_mean() -> None:
    sums = PairSums(*(np.array(v, dtype=float) for v in ([2, 1], [3, 1], [10, 5], [5, 1], [15, 5], [50, 25])))
    intercept, terms, per_mile = sums.ridge(1e-4)
    assert (intercept, terms.tolist(), per_mile) == (5.0, [0.0, 0.0], 0.0)
