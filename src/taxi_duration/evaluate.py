"""Metrics in minutes, overall and by borough and hour band: what every model and baseline is judged by.

RMSLE is the Kaggle NYC trip-duration metric; predictions below zero are clipped to zero before it, as a
duration cannot be negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    mean_absolute_error,
    r2_score,
    root_mean_squared_error,
    root_mean_squared_log_error,
)

# Hour bands with different traffic: (label, first hour, last hour).
HOUR_BANDS: tuple[tuple[str, int, int], ...] = (
    ("night 0-5", 0, 5),
    ("morning rush 6-9", 6, 9),
    ("midday 10-15", 10, 15),
    ("evening rush 16-19", 16, 19),
    ("evening 20-23", 20, 23),
)


def metrics(actual: Any, predicted: Any) -> dict[str, float]:
    """RMSE, MAE, R2 and RMSLE (all in minutes but R2) and the row count."""
    y, p = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    if len(y) == 0:
        return {"rows": 0, "rmse": float("nan"), "mae": float("nan"), "r2": float("nan"), "rmsle": float("nan")}
    return {
        "rows": len(y),
        "rmse": float(root_mean_squared_error(y, p)),
        "mae": float(mean_absolute_error(y, p)),
        "r2": float(r2_score(y, p)) if len(y) > 1 else float("nan"),
        "rmsle": float(root_mean_squared_log_error(np.clip(y, 0, None), np.clip(p, 0, None))),
    }


def hour_band(hour: Any) -> np.ndarray:
    """The band label of each pickup hour."""
    hours = np.asarray(hour)
    labels = np.full(hours.shape, "", dtype=object)
    for label, first, last in HOUR_BANDS:
        labels[(hours >= first) & (hours <= last)] = label
    return labels


def breakdown(actual: Any, predicted: Any, borough: Any, hour: Any) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics overall, by pickup borough and by hour band."""
    frame = pd.DataFrame(
        {"y": np.asarray(actual, float), "p": np.asarray(predicted, float), "borough": borough, "band": hour_band(hour)}
    )
    return {
        "overall": {"all": metrics(frame.y, frame.p)},
        "by_borough": {str(k): metrics(g.y, g.p) for k, g in frame.groupby("borough", sort=True)},
        "by_hour_band": {
            label: metrics(frame.y[frame.band == label], frame.p[frame.band == label]) for label, _, _ in HOUR_BANDS
        },
    }
