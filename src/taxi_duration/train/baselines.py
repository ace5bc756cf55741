"""The baselines every model must beat, reproduced in the same run as the model.

- `CourseBaseline`: the well-known course's model: one-hot pickup-dropoff pair plus trip distance,
  scikit-learn `LinearRegression`, trained and judged on trips of 1-60 minutes. On data with no metered
  distance (the Kaggle trips), the straight-line miles from the coordinates stand in for it. On Spark the
  same model is fitted with a tiny ridge, solved exactly from each pair's sums (`PairSums`).
- `GlobalMean`: the mean training duration for every trip.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import narwhals as nw
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LinearRegression
from sklearn.preprocessing import OneHotEncoder

from taxi_duration.core import schema as s
from taxi_duration.features.definitions import STRAIGHT_MILES, TARGET, trip_miles


@dataclass
class CourseBaseline:
    """One-hot `PU_DO` + `trip_distance` -> `LinearRegression`: the course's model and design matrix.

    The course builds it with a `DictVectorizer` over one dict per trip; the same one-hot columns come
    here from an integer pair code, so ten million trips need no ten million Python dicts.
    """

    INPUTS: ClassVar[tuple[str, ...]] = (s.PU_ZONE, s.DO_ZONE, s.DISTANCE, STRAIGHT_MILES)

    # Its categories are the one-hot columns; it stays an encoder so the bundles saved before still load.
    encoder: OneHotEncoder = field(default_factory=lambda: OneHotEncoder(handle_unknown="ignore"))
    model: LinearRegression = field(default_factory=LinearRegression)

    @staticmethod
    def _inputs(trips: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each trip's pickup-dropoff pair code and its miles (metered, or the straight line without a meter)."""
        pairs = trips[s.PU_ZONE].to_numpy(np.int32) * 10_000 + trips[s.DO_ZONE].to_numpy(np.int32)
        miles = nw.from_native(trips, eager_only=True).select(trip_miles().alias("miles")).to_native()["miles"]
        return pairs, miles.to_numpy(np.float64, na_value=np.nan)

    def _design(self, pairs: np.ndarray, miles: np.ndarray) -> sparse.csr_matrix:
        """The one-hot pair columns, then the miles: the matrix `OneHotEncoder` and `hstack` would build, written
        straight into CSR (a row holds at most two entries) so fifty million rows need no COO copy."""
        known_pairs = self.encoder.categories_[0]
        codes = np.searchsorted(known_pairs, pairs).astype(np.int32)
        present = np.stack([known_pairs[np.minimum(codes, len(known_pairs) - 1)] == pairs, miles != 0], axis=1)
        columns = np.stack([codes, np.full_like(codes, len(known_pairs))], axis=1)[present]
        values = np.stack([np.ones_like(miles), miles], axis=1)[present]
        rows = np.zeros(len(pairs) + 1, np.int64)
        np.cumsum(present.sum(axis=1), out=rows[1:])
        return sparse.csr_matrix((values, columns, rows), shape=(len(pairs), len(known_pairs) + 1))

    def fit(self, trips: pd.DataFrame) -> CourseBaseline:
        """Fit on trips with the target column."""
        return self.fit_batches([trips])

    def fit_batches(self, batches: Iterable[pd.DataFrame]) -> CourseBaseline:
        """Fit on trips with the target column, given as frames in order: the fit is the one on their concatenation,
        but only the pair codes, the miles and the target of each row are kept (20 bytes a row)."""
        kept: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        for batch in batches:
            for held, column in zip(kept, (*self._inputs(batch), batch[TARGET].to_numpy(np.float64)), strict=True):
                held.append(column)
        pairs, miles, target = (np.concatenate(held) for held in kept)
        del kept
        self.encoder.fit(np.unique(pairs).reshape(-1, 1))
        self.model.fit(self._design(pairs, miles), target)
        return self

    def predict(self, trips: pd.DataFrame) -> np.ndarray:
        """Predicted minutes."""
        return self.model.predict(self._design(*self._inputs(trips)))


@dataclass(frozen=True)
class PairSums:
    """Each pickup-dropoff pair's count and sums of miles (d) and minutes (y): all the course model's ridge
    needs, one row per pair, from one pass over the trips."""

    n: np.ndarray
    sd: np.ndarray
    sy: np.ndarray
    sdd: np.ndarray
    sdy: np.ndarray
    syy: np.ndarray

    def ridge(self, reg_param: float) -> tuple[float, np.ndarray, float]:
        """The intercept, each pair's term and the per-mile term that minimize MLlib `LinearRegression`'s
        objective on the one-hot pairs and the miles with `standardization=False`:
        1/(2N) sum (y - c - b_pair - w d)^2 + (lam/2) (sum b^2 + w^2), where lam = reg_param / std(y).

        Written by hand because no library solves it from sums: setting the gradient to zero gives each pair's
        term as b_p = (Sy_p - c n_p - w Sd_p) / (n_p + N lam), and two equations in (c, w) once those are
        substituted. A label with no spread gives its mean and zero terms, as MLlib does.
        """
        total = float(self.n.sum())
        mean = float(self.sy.sum()) / total
        spread = max(float(self.syy.sum()) - total * mean * mean, 0.0) / max(total - 1, 1)
        if spread == 0:
            return mean, np.zeros(len(self.n)), 0.0
        lam = total * reg_param / np.sqrt(spread)  # N lam
        k = self.n + lam
        r = lam / k  # how much of each pair's deviation the ridge leaves to c and w
        lhs = np.array(
            [
                [np.sum(r * self.n), np.sum(r * self.sd)],
                [np.sum(r * self.sd), np.sum(self.sdd - self.sd**2 / k) + lam],
            ]
        )
        rhs = np.array([np.sum(r * self.sy), np.sum(self.sdy - self.sd * self.sy / k)])
        intercept, per_mile = np.linalg.solve(lhs, rhs)
        return float(intercept), (self.sy - intercept * self.n - per_mile * self.sd) / k, float(per_mile)


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
