"""The team's original duration predictor, reproduced: the baseline our model must beat on its own data.

It read the Kaggle "NYC Taxi Trip Duration" trips (coordinates, `trip_duration` in seconds), kept trips
of 30 seconds to 6 hours, built 8 features and fitted a scikit-learn `RandomForestRegressor` with 100
trees; its README reports RMSE 6.62 min, MAE 4.27, R2 0.68. The README names the features but not every
definition, so two are stated here: *distance* is the great-circle (haversine) distance in kilometres, and
*rush hour* is 7-9 am and 4-7 pm on weekdays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

from taxi_duration.core import schema as s

NAME = "old_random_forest"  # its column and row in `evaluate`
DURATION_S = "trip_duration"
MIN_DURATION_S, MAX_DURATION_S = 30, 6 * 3600
FEATURES = (
    "haversine_km",
    "passenger_count",
    "vendor_id",
    "hour",
    "day_of_week",
    "month",
    "is_weekend",
    "is_rush_hour",
)
RUSH_HOURS = frozenset({7, 8, 16, 17, 18})
EARTH_RADIUS_KM = 6371.0088  # the mean radius (IUGG)


def haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance in kilometres between points given in degrees."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def from_canonical(trips: pd.DataFrame) -> pd.DataFrame:
    """Canonical trips (as read, with coordinates) in the Kaggle form the old model read: its duration column
    back, every other column it uses already carries its Kaggle name."""
    seconds = (trips[s.DROPOFF] - trips[s.PICKUP]).dt.total_seconds()
    return trips.assign(**{DURATION_S: seconds.to_numpy(float, na_value=np.nan)})


def kept(trips: pd.DataFrame) -> pd.DataFrame:
    """The old model's only cleaning: trips of 30 seconds to 6 hours."""
    return trips[trips[DURATION_S].between(MIN_DURATION_S, MAX_DURATION_S)]


def features(trips: pd.DataFrame) -> pd.DataFrame:
    """The 8 features, from Kaggle-format trips."""
    pickup = pd.to_datetime(trips["pickup_datetime"])
    weekday = pickup.dt.dayofweek  # Monday 0
    hour = pickup.dt.hour
    return pd.DataFrame(
        {
            "haversine_km": haversine_km(
                trips["pickup_longitude"],
                trips["pickup_latitude"],
                trips["dropoff_longitude"],
                trips["dropoff_latitude"],
            ),
            "passenger_count": trips["passenger_count"].to_numpy(),
            "vendor_id": trips["vendor_id"].to_numpy(),
            "hour": hour.to_numpy(),
            "day_of_week": weekday.to_numpy(),
            "month": pickup.dt.month.to_numpy(),
            "is_weekend": (weekday >= 5).astype(int).to_numpy(),
            "is_rush_hour": ((weekday < 5) & hour.isin(RUSH_HOURS)).astype(int).to_numpy(),
        },
        index=trips.index,
    )


def fit(trips: pd.DataFrame, seed: int = 0) -> RandomForestRegressor:
    """The old model fitted on Kaggle-format trips (the filter applied here): minutes from the 8 features."""
    train = kept(trips)
    model = RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=-1)
    model.fit(features(train)[list(FEATURES)], train[DURATION_S].to_numpy() / 60.0)
    return model


def predict(model: RandomForestRegressor, trips: pd.DataFrame) -> np.ndarray:
    """Predicted minutes."""
    return np.asarray(model.predict(features(trips)[list(FEATURES)]), dtype=np.float64)
