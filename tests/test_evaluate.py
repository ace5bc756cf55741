"""Metrics and breakdowns, on numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from taxi_duration.evaluate import breakdown, hour_band, metrics


def test_metrics_by_hand() -> None:
    m = metrics([10.0, 20.0, 30.0], [12.0, 18.0, 30.0])
    assert m["rows"] == 3
    assert m["rmse"] == pytest.approx(math.sqrt(8 / 3))
    assert m["mae"] == pytest.approx(4 / 3)
    assert m["r2"] == pytest.approx(1 - 8 / 200)
    expected = math.sqrt(np.mean((np.log1p([12, 18, 30]) - np.log1p([10, 20, 30])) ** 2))
    assert m["rmsle"] == pytest.approx(expected)


def test_negative_predictions_are_clipped_for_rmsle_only() -> None:
    m = metrics([1.0, 2.0], [-3.0, 2.0])
    assert m["rmsle"] == pytest.approx(math.sqrt(np.log1p(1.0) ** 2 / 2))
    assert m["mae"] == pytest.approx(2.0)


def test_empty_input_gives_nan_not_an_error() -> None:
    m = metrics([], [])
    assert m["rows"] == 0
    assert math.isnan(m["rmse"])


def test_hour_bands_cover_every_hour_once() -> None:
    labels = hour_band(list(range(24)))
    assert all(labels)
    assert list(labels[[0, 5, 6, 9, 10, 16, 23]]) == [
        "night 0-5",
        "night 0-5",
        "morning rush 6-9",
        "morning rush 6-9",
        "midday 10-15",
        "evening rush 16-19",
        "evening 20-23",
    ]


def test_breakdown_groups_rows() -> None:
    result = breakdown([10, 20, 30, 40], [10, 22, 30, 44], ["Queens", "Queens", "Bronx", "Bronx"], [1, 7, 7, 12])
    assert result["overall"]["all"]["rows"] == 4
    assert result["by_borough"]["Bronx"]["mae"] == pytest.approx(2.0)
    assert result["by_borough"]["Queens"]["mae"] == pytest.approx(1.0)
    assert result["by_hour_band"]["morning rush 6-9"]["rows"] == 2
    assert result["by_hour_band"]["evening 20-23"]["rows"] == 0
