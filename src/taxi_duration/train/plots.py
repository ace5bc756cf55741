"""The figures every training run logs: how close predictions are, when the model errs, what it relies on.

Figures are built as `matplotlib.figure.Figure` objects, never through pyplot: nothing here chooses a
backend or keeps a figure open, so training runs headless on a server and a notebook that imports it keeps
its inline plots. A figure is freed like any object once written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from taxi_duration.train.metrics import Scores


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """A hexbin of predicted against actual minutes, with the line a perfect model would draw."""
    fig = Figure(figsize=(6, 5.5), layout="constrained")
    ax = fig.subplots()
    top = float(np.percentile(actual, 99.5)) if len(actual) else 1.0
    hb = ax.hexbin(actual, predicted, gridsize=60, extent=(0, top, 0, top), bins="log", cmap="viridis", mincnt=1)
    ax.plot([0, top], [0, top], color="tab:red", lw=1, label="predicted = actual")
    ax.set(xlabel="actual minutes", ylabel="predicted minutes", title=title, xlim=(0, top), ylim=(0, top))
    ax.legend(loc="upper left")
    fig.colorbar(hb, ax=ax, label="trips (log)")
    return fig


def residuals_by_hour(actual: np.ndarray, predicted: np.ndarray, hour: np.ndarray, title: str) -> Figure:
    """Residuals (predicted - actual) by pickup hour: median and the 10-90% band."""
    residual = np.asarray(predicted) - np.asarray(actual)
    hours = np.arange(24)
    q = np.array(
        [np.percentile(residual[hour == h], [10, 50, 90]) if (hour == h).any() else [np.nan] * 3 for h in hours]
    )
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    ax.fill_between(hours, q[:, 0], q[:, 2], alpha=0.3, label="10-90% of trips")
    ax.plot(hours, q[:, 1], marker="o", label="median")
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="pickup hour", ylabel="predicted - actual (minutes)", title=title, xticks=hours[::2])
    ax.legend()
    return fig


def feature_importance(importances: Mapping[str, float], title: str, top: int = 20) -> Figure:
    """The `top` features by importance, largest at the top, as shares of the total."""
    total = sum(importances.values()) or 1.0
    ranked = sorted(importances.items(), key=lambda kv: kv[1])[-top:]
    fig = Figure(figsize=(7, 0.3 * len(ranked) + 1.2), layout="constrained")
    ax = fig.subplots()
    ax.barh([k for k, _ in ranked], [v / total for _, v in ranked], color="tab:blue")
    ax.set(xlabel="share of total importance", title=title)
    return fig


def rmse_by_borough(scores: Mapping[str, Scores], title: str) -> Figure:
    """RMSE by pickup borough for the model and each baseline, side by side."""
    names = list(scores)
    boroughs = sorted({b for s in scores.values() for b, m in s["by_borough"].items() if m["rows"]})
    fig = Figure(figsize=(9, 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(names)
    x = np.arange(len(boroughs))
    for i, name in enumerate(names):
        values = [scores[name]["by_borough"].get(b, {}).get("rmse", np.nan) for b in boroughs]
        ax.bar(x + i * width, values, width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, boroughs)
    ax.set(ylabel="RMSE (minutes)", title=title)
    ax.legend()
    return fig


def search_timeline(spans: Sequence[Mapping[str, Any]], title: str) -> Figure:
    """A Gantt chart of the candidate search: one bar per candidate from its start to its end (seconds from
    the search's start), so candidates that ran at the same time sit side by side."""
    fig = Figure(figsize=(8, 0.4 * len(spans) + 1.4), layout="constrained")
    ax = fig.subplots()
    labels = [f"{s['candidate']}: {s['name']}" for s in spans]
    families = sorted({s["name"] for s in spans})
    colors = {name: f"C{i}" for i, name in enumerate(families)}
    ax.barh(
        labels,
        [s["duration_s"] for s in spans],
        left=[s["start_s"] for s in spans],
        color=[colors[s["name"]] for s in spans],
    )
    ax.invert_yaxis()  # the first candidate at the top
    ax.set(xlabel="seconds since the search started", title=title)
    return fig
