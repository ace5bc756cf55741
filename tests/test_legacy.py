"""The team's original model, reproduced on the Kaggle sample it was built for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taxi_duration.monitor import legacy
from taxi_duration.train.metrics import metrics


def test_haversine_is_the_great_circle_distance() -> None:
    one_degree = np.pi * legacy.EARTH_RADIUS_KM / 180  # along a meridian, or the equator
    lon1, lat1 = np.array([0.0, 0.0, -73.98]), np.array([0.0, 0.0, 40.75])
    lon2, lat2 = np.array([0.0, 1.0, -73.98]), np.array([1.0, 0.0, 40.75])
    np.testing.assert_allclose(legacy.haversine_km(lon1, lat1, lon2, lat2), [one_degree, one_degree, 0.0])


def test_features_follow_the_stated_definitions() -> None:
    trips = pd.DataFrame(
        {
            "pickup_datetime": ["2016-01-04 08:15:00", "2016-01-09 08:15:00", "2016-03-15 23:59:59"],
            "pickup_longitude": [-73.98] * 3,
            "pickup_latitude": [40.75] * 3,
            "dropoff_longitude": [-73.97] * 3,
            "dropoff_latitude": [40.76] * 3,
            "passenger_count": [1, 2, 3],
            "vendor_id": [1, 2, 1],
        }
    )
    f = legacy.features(trips)
    assert list(f.columns) == list(legacy.FEATURES)
    assert f["is_rush_hour"].tolist() == [1, 0, 0]  # Monday 8 am; Saturday 8 am; Tuesday midnight
    assert f["is_weekend"].tolist() == [0, 1, 0]
    assert f["month"].tolist() == [1, 1, 3]


@pytest.mark.shared
def test_the_old_model_learns_on_the_kaggle_sample(shared_data: Path) -> None:
    train = pd.read_csv(shared_data / "kaggle_nyc_trip_duration_sample_train.csv")
    val = legacy.kept(pd.read_csv(shared_data / "kaggle_nyc_trip_duration_sample_val.csv"))
    assert len(legacy.kept(train)) < len(train)  # the sample holds trips outside 30 s - 6 h
    predicted = legacy.predict(legacy.fit(train), val)
    actual = val[legacy.DURATION_S].to_numpy() / 60.0
    scores = metrics(actual, predicted)
    mean = metrics(actual, np.full(len(val), legacy.kept(train)[legacy.DURATION_S].mean() / 60.0))
    assert scores["rmse"] < 0.9 * mean["rmse"]
