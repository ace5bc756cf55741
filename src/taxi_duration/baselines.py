"""The baselines every model must beat, reproduced in the same run as the model.

- `CourseBaseline`: the well-known course's model: one-hot pickup-dropoff pair plus trip distance,
  scikit-learn `LinearRegression`, trained and judged on trips of 1-60 minutes. On data with no metered
  distance (the Kaggle trips), the straight-line miles from the coordinates stand in for it.
- `GlobalMean`: the mean training duration for every trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import narwhals as nw
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import OneHotEncoder

from taxi_duration import schema as s
from taxi_duration.features import STRAIGHT_MILES, TARGET, trip_miles


@dataclass
class CourseBaseline:
    """One-hot `PU_DO` + `trip_distance` -> `LinearRegression`: the course's model and design matrix.

    The course builds it with a `DictVectorizer` over one dict per trip; the same one-hot columns come
    here from an integer pair code, so ten million trips need no ten million Python dicts.
    """

    INPUTS: ClassVar[tuple[str, ...]] = (s.PU_ZONE, s.DO_ZONE, s.DISTANCE, STRAIGHT_MILES)

    encoder: OneHotEncoder = field(default_factory=lambda: OneHotEncoder(handle_unknown="ignore"))
    model: LinearRegression = field(default_factory=LinearRegression)

    @staticmethod
    def _pairs(trips: pd.DataFrame) -> np.ndarray:
        return (trips[s.PU_ZONE].to_numpy(np.int64) * 10_000 + trips[s.DO_ZONE].to_numpy(np.int64)).reshape(-1, 1)

    def _design(self, trips: pd.DataFrame) -> sparse.csr_matrix:
        miles = nw.from_native(trips, eager_only=True).select(trip_miles().alias("miles")).to_native()["miles"]
        distance = sparse.csr_matrix(miles.to_numpy(float, na_value=np.nan).reshape(-1, 1))
        return sparse.hstack([self.encoder.transform(self._pairs(trips)), distance], format="csr")

    def fit(self, trips: pd.DataFrame) -> CourseBaseline:
        """Fit on trips with the target column."""
        self.encoder.fit(self._pairs(trips))
        self.model.fit(self._design(trips), trips[TARGET].to_numpy())
        return self

    def predict(self, trips: pd.DataFrame) -> np.ndarray:
        """Predicted minutes."""
        return self.model.predict(self._design(trips))


@dataclass
class GlobalMean:
    """The mean training duration, predicted for every trip."""

    mean: float = float("nan")

    def fit(self, trips: pd.DataFrame) -> GlobalMean:
        """Remember the mean target."""
        self.mean = float(trips[TARGET].mean())
        return self

    def predict(self, trips: pd.DataFrame) -> np.ndarray:
        """The mean, once per trip."""
        return np.full(len(trips), self.mean)
