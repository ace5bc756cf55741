"""The p10-p90 interval around a prediction, from how wrong the model was on the validation month.

Errors of a duration model grow with the duration, so the interval is a ratio: predictions are put in
bins of equal count, and each bin keeps the 10th and 90th percentiles of `log(actual / predicted)`. On the
test month, which was never used to fit it, about 80% of trips should fall inside (training logs how many).
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

LEVELS = (0.1, 0.9)
BINS = 10
_FLOOR = 0.5  # minutes: keeps log ratios finite for (rare) near-zero predictions and trips


@dataclass(frozen=True)
class Interval:
    """Per prediction bin (`edges` are the upper bounds of all bins but the last), the log-ratio quantiles."""

    edges: list[float]
    low: list[float]
    high: list[float]

    def bounds(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p10, p90) minutes for each prediction."""
        p = np.asarray(predicted, dtype=np.float64)
        b = np.searchsorted(np.asarray(self.edges), p, side="right")
        return p * np.exp(np.asarray(self.low)[b]), p * np.exp(np.asarray(self.high)[b])

    def bounds_one(self, predicted: float) -> tuple[float, float]:
        """(p10, p90) minutes for one prediction."""
        b = bisect.bisect_right(self.edges, predicted)
        return predicted * float(np.exp(self.low[b])), predicted * float(np.exp(self.high[b]))

    def coverage(self, actual: np.ndarray, predicted: np.ndarray) -> float:
        """The share of trips whose actual duration lies inside their interval."""
        lo, hi = self.bounds(predicted)
        y = np.asarray(actual, dtype=np.float64)
        return float(np.mean((y >= lo) & (y <= hi)))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the bundle's meta.json)."""
        return asdict(self)


def fit(actual: np.ndarray, predicted: np.ndarray, bins: int = BINS) -> Interval:
    """Fit the interval on trips the model did not train on (the validation month)."""
    y, p = np.asarray(actual, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    ratio = np.log(np.maximum(y, _FLOOR)) - np.log(np.maximum(p, _FLOOR))
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]))
    which = np.searchsorted(edges, p, side="right")
    low, high = [], []
    for b in range(edges.size + 1):
        inside = ratio[which == b] if np.any(which == b) else ratio
        lo, hi = np.quantile(inside, LEVELS)
        low.append(float(lo))
        high.append(float(hi))
    return Interval([float(e) for e in edges], low, high)
