"""The p10-p90 interval around a prediction, from how wrong the model was on the validation month.

Errors of a duration model grow with the duration, so the interval is a ratio: predictions are put in
bins of equal count, and each bin keeps the 10th and 90th percentiles of `log(actual / predicted)`. Errors
also differ by place (Bronx trips are harder to time than Manhattan ones, so one interval for all covers
Manhattan too often and the Bronx too rarely), so each pickup borough with enough validation trips gets its
own bins, and the rest share the overall ones. On the test month, which was never used to fit it, about 80%
of trips should fall inside, in every borough (training logs how many).
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

LEVELS = (0.1, 0.9)
BINS = 10
_FLOOR = 0.5  # minutes: keeps log ratios finite for (rare) near-zero predictions and trips
# A borough's own interval needs enough trips for its bins' tails: at least this many per bin, and one bin
# at least (fewer trips than that share the overall interval).
TRIPS_PER_BIN = 500


@dataclass(frozen=True)
class Bins:
    """Per prediction bin (`edges` are the upper bounds of all bins but the last), the log-ratio quantiles."""

    edges: list[float]
    low: list[float]
    high: list[float]

    def bounds(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p10, p90) minutes for each prediction."""
        b = np.searchsorted(np.asarray(self.edges), predicted, side="right")
        return predicted * np.exp(np.asarray(self.low)[b]), predicted * np.exp(np.asarray(self.high)[b])

    def bounds_one(self, predicted: float) -> tuple[float, float]:
        """(p10, p90) minutes for one prediction."""
        b = bisect.bisect_right(self.edges, predicted)
        return predicted * float(np.exp(self.low[b])), predicted * float(np.exp(self.high[b]))


@dataclass(frozen=True)
class Interval(Bins):
    """The overall bins, and the bins of each pickup borough that had enough validation trips."""

    by_borough: dict[str, Bins] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read back from JSON (the bundle's meta.json), a borough's bins are plain dicts.
        for name, bins in self.by_borough.items():
            if isinstance(bins, dict):
                self.by_borough[name] = Bins(**bins)

    def bounds(self, predicted: np.ndarray, boroughs: Any = None) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        """(p10, p90) minutes for each prediction, by its pickup borough when given."""
        p = np.asarray(predicted, dtype=np.float64)
        low, high = Bins.bounds(self, p)
        if boroughs is None or not self.by_borough:
            return low, high
        where = np.asarray(boroughs).astype(str)
        for name, bins in self.by_borough.items():
            mine = where == name
            if mine.any():
                low[mine], high[mine] = bins.bounds(p[mine])
        return low, high

    def bounds_one(self, predicted: float, borough: str | None = None) -> tuple[float, float]:  # type: ignore[override]
        """(p10, p90) minutes for one prediction, by its pickup borough when given."""
        return self.by_borough.get(borough, self).bounds_one(predicted) if borough else Bins.bounds_one(self, predicted)

    def coverage_by(self, actual: Any, predicted: Any, boroughs: Any) -> dict[str, dict[str, float]]:
        """Coverage and trip count overall (`all`) and in each pickup borough, the busiest first."""
        y, where = np.asarray(actual, dtype=np.float64), np.asarray(boroughs).astype(str)
        lo, hi = self.bounds(predicted, where)
        inside = (y >= lo) & (y <= hi)
        names, counts = np.unique(where, return_counts=True)
        table = {"all": {"coverage": float(inside.mean()), "trips": float(y.size)}}
        for name, count in sorted(zip(names.tolist(), counts.tolist(), strict=True), key=lambda nc: -nc[1]):
            table[name] = {"coverage": float(inside[where == name].mean()), "trips": float(count)}
        return table

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the bundle's meta.json)."""
        return asdict(self)


def fit(actual: Any, predicted: Any, boroughs: Any = None, bins: int = BINS) -> Interval:
    """Fit the interval on trips the model did not train on (the validation month): overall, and for each
    pickup borough (when given) with at least `TRIPS_PER_BIN` trips."""
    y, p = np.asarray(actual, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    ratio = np.log(np.maximum(y, _FLOOR)) - np.log(np.maximum(p, _FLOOR))
    overall = _bins(ratio, p, bins)
    own: dict[str, Bins] = {}
    if boroughs is not None:
        where = np.asarray(boroughs).astype(str)
        names, counts = np.unique(where, return_counts=True)
        for name, count in zip(names.tolist(), counts.tolist(), strict=True):
            if count >= TRIPS_PER_BIN:
                mine = where == name
                own[name] = _bins(ratio[mine], p[mine], min(bins, count // TRIPS_PER_BIN))
    return Interval(overall.edges, overall.low, overall.high, own)


def _bins(ratio: np.ndarray, p: np.ndarray, bins: int) -> Bins:
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]))
    which = np.searchsorted(edges, p, side="right")
    low, high = [], []
    for b in range(edges.size + 1):
        inside = ratio[which == b] if np.any(which == b) else ratio
        lo, hi = np.quantile(inside, LEVELS)
        low.append(float(lo))
        high.append(float(hi))
    return Bins([float(e) for e in edges], low, high)
