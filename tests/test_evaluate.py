"""Metrics and breakdowns, on numbers worked out by hand."""

from __future__ import annotations

import math

import narwhals as nw
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import TARGET
from taxi_duration.train.metrics import BOROUGH, HOUR, hour_band, metrics, score
from tests.conftest import ALL_ENGINES


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


FRAME = pd.DataFrame(
    {
        "duration_min": [10.0, 20, 30, 40],
        "model": [10.0, 22, 30, 44],
        "mean": [25.0, 25, 25, 25],
        "pu_borough": ["Queens", "Queens", "Bronx", "Bronx"],
        "pickup_hour": [1, 7, 7, 12],
    }
)


def test_score_groups_rows_by_borough_and_band() -> None:
    result = score(nw.from_native(FRAME, eager_only=True), ["model", "mean"])
    model = result["model"]
    assert model["overall"]["all"]["rows"] == 4
    assert model["overall"]["all"]["mae"] == pytest.approx(1.5)
    assert model["by_borough"]["Bronx"]["mae"] == pytest.approx(2.0)
    assert model["by_borough"]["Queens"]["mae"] == pytest.approx(1.0)
    assert model["by_hour_band"]["morning rush 6-9"]["rows"] == 2
    assert model["by_hour_band"]["evening 20-23"]["rows"] == 0
    assert result["mean"]["overall"]["all"]["r2"] == pytest.approx(0.0)


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_every_engine_scores_alike(runtime: Runtime) -> None:
    ours = score(runtime.from_arrow(pa.Table.from_pandas(FRAME)), ["model"])["model"]
    expected = score(nw.from_native(FRAME, eager_only=True), ["model"])["model"]
    for kind, groups in expected.items():
        for group, values in groups.items():
            assert ours[kind][group] == pytest.approx(values, nan_ok=True), (kind, group)


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
@pytest.mark.parametrize("missing", [None, float("nan")])
def test_a_missing_prediction_is_an_error_not_a_perfect_score(runtime: Runtime, missing: float | None) -> None:
    # A NaN once reached Spark's sums and made a whole group vanish from the metrics, not fail them.
    frame = pa.table(
        {TARGET: [10.0, 20.0, 30.0], "p": pa.array([10.0, missing, 31.0], pa.float64(), from_pandas=False)}
    )
    frame = frame.append_column(BOROUGH, pa.array(["Queens"] * 3)).append_column(HOUR, pa.array([8] * 3))
    with pytest.raises(ValueError, match="1 of 3 rows have no p prediction"):
        score(runtime.from_arrow(frame), ["p"])
