"""Metrics in minutes, overall and by borough and hour band: what every model and baseline is judged by.

The metrics are computed from sums (squared error, absolute error, ...) aggregated by pickup borough and
hour on the frame's own engine, so a month of predictions on Spark is scored where it lies and only a small
table of sums reaches the driver. RMSLE is the Kaggle NYC trip-duration metric; predictions below zero are
clipped to zero before it, as a duration cannot be negative.
"""

from __future__ import annotations

from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from taxi_duration.features.definitions import PICKUP_HOUR, PU_BOROUGH, TARGET

BOROUGH, HOUR = PU_BOROUGH, PICKUP_HOUR
# Prediction columns every scored frame carries: ours, then the baselines it must beat.
MODEL = "model"
BASELINES = ("course", "zone_pair_median", "global_mean")
METRICS = ("rmse", "mae", "r2", "rmsle")

# Hour bands with different traffic: (label, first hour, last hour).
HOUR_BANDS: tuple[tuple[str, int, int], ...] = (
    ("night 0-5", 0, 5),
    ("morning rush 6-9", 6, 9),
    ("midday 10-15", 10, 15),
    ("evening rush 16-19", 16, 19),
    ("evening 20-23", 20, 23),
)

Scores = dict[str, dict[str, dict[str, float]]]


def hour_band(hour: Any) -> np.ndarray:
    """The band label of each pickup hour."""
    hours = np.asarray(hour)
    labels = np.full(hours.shape, "", dtype=object)
    for label, first, last in HOUR_BANDS:
        labels[(hours >= first) & (hours <= last)] = label
    return labels


def _log1p(expr: nw.Expr) -> nw.Expr:
    return (expr.clip(lower_bound=0.0) + 1.0).log()


def sums(frame: Any, predictions: list[str], target: str = TARGET) -> pd.DataFrame:
    """Per (borough, hour): row count and the sums every metric is built from, one row per group.

    `frame` is a narwhals frame on any engine with `target`, `pu_borough`, `pickup_hour` and the
    prediction columns.
    """
    y = nw.col(target)
    terms = {"y": y, "yy": y * y}
    for p in predictions:
        err, log_err = nw.col(p) - y, _log1p(nw.col(p)) - _log1p(y)
        terms |= {f"{p}:se": err * err, f"{p}:ae": err.abs(), f"{p}:sle": log_err * log_err}
        # Sums skip missing values, which would score a missing prediction as a perfect one: count them.
        terms[f"{p}:missing"] = (nw.col(p).is_null() | nw.col(p).is_nan()).cast(nw.Int64())
    # Row terms first, then plain sums: the one form of group-by every engine (pandas too) runs natively.
    rows = frame.select(BOROUGH, HOUR, nw.lit(1).alias("n"), **terms)
    table = rows.group_by(BOROUGH, HOUR).agg(nw.col("n", *terms).sum())
    if isinstance(table, nw.LazyFrame):
        table = table.collect()
    return table.to_pandas()


def _from_sums(row: pd.Series, p: str) -> dict[str, float]:
    n = int(row["n"])
    if n == 0:
        return {"rows": 0, **dict.fromkeys(METRICS, float("nan"))}
    total = row["yy"] - row["y"] ** 2 / n
    return {
        "rows": n,
        "rmse": float(np.sqrt(row[f"{p}:se"] / n)),
        "mae": float(row[f"{p}:ae"] / n),
        "r2": float(1 - row[f"{p}:se"] / total) if n > 1 and total > 0 else float("nan"),
        "rmsle": float(np.sqrt(row[f"{p}:sle"] / n)),
    }


def score(frame: Any, predictions: list[str], target: str = TARGET) -> dict[str, Scores]:
    """For each prediction column: metrics overall, by pickup borough and by hour band."""
    return score_sums(sums(frame, predictions, target), predictions)


def add_sums(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """`sums` of several frames (batches of one part) added up: the `sums` of the whole part."""
    return pd.concat(tables).groupby([BOROUGH, HOUR], dropna=False, as_index=False).sum()


def score_sums(sums_table: pd.DataFrame, predictions: list[str]) -> dict[str, Scores]:
    """`score` from a table of `sums`."""
    table = sums_table.assign(band=lambda t: hour_band(t[HOUR]))
    for p in predictions:
        if missing := int(table[f"{p}:missing"].sum()):
            raise ValueError(f"{missing:,} of {int(table['n'].sum()):,} rows have no {p} prediction to score")
    numeric = table.drop(columns=[BOROUGH, HOUR, "band"])
    overall = numeric.sum()
    by_borough = numeric.groupby(table[BOROUGH]).sum()
    by_band = numeric.groupby(table["band"]).sum().reindex([b for b, _, _ in HOUR_BANDS], fill_value=0)
    return {
        p: {
            "overall": {"all": _from_sums(overall, p)},
            "by_borough": {str(k): _from_sums(r, p) for k, r in by_borough.sort_index().iterrows()},
            "by_hour_band": {str(k): _from_sums(r, p) for k, r in by_band.iterrows()},
        }
        for p in predictions
    }


def metrics(actual: Any, predicted: Any) -> dict[str, float]:
    """RMSE, MAE, R2 and RMSLE (all in minutes but R2) and the row count, for arrays."""
    frame = pd.DataFrame({TARGET: np.asarray(actual, float), "p": np.asarray(predicted, float), BOROUGH: "", HOUR: 0})
    return score(nw.from_native(frame, eager_only=True), ["p"])["p"]["overall"]["all"]
