"""The baselines every model must beat, reproduced in the same run as the model.

- `CourseBaseline`: the well-known course's model: one-hot pickup-dropoff pair plus trip distance,
  scikit-learn `LinearRegression`, trained and judged on trips of 1-60 minutes.
- `GlobalMean`: the mean training duration for every trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LinearRegression

from taxi_duration import schema as s
from taxi_duration.features import TARGET, TARGET_RANGE


def course_filter(trips: pd.DataFrame) -> pd.DataFrame:
    """The course's only cleaning step: keep trips of 1 to 60 minutes."""
    return trips[trips[TARGET].between(*TARGET_RANGE)]


@dataclass
class CourseBaseline:
    """One-hot `PU_DO` + `trip_distance` -> `LinearRegression`, exactly as the course builds it."""

    vectorizer: DictVectorizer = field(default_factory=DictVectorizer)
    model: LinearRegression = field(default_factory=LinearRegression)

    @staticmethod
    def _records(trips: pd.DataFrame) -> list[dict[str, object]]:
        pairs = trips[s.PU_ZONE].astype(str) + "_" + trips[s.DO_ZONE].astype(str)
        return [{"PU_DO": p, "trip_distance": float(d)} for p, d in zip(pairs, trips[s.DISTANCE], strict=True)]

    def fit(self, trips: pd.DataFrame) -> CourseBaseline:
        """Fit on trips with the target column."""
        self.model.fit(self.vectorizer.fit_transform(self._records(trips)), trips[TARGET].to_numpy())
        return self

    def predict(self, trips: pd.DataFrame) -> np.ndarray:
        """Predicted minutes."""
        return self.model.predict(self.vectorizer.transform(self._records(trips)))


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
