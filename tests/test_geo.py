"""Zones from coordinates, with the TLC's real zone shapes: every zone finds itself, points outside every
zone get the unknown zone, and Spark's Arrow UDF assigns what the local index assigns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from taxi_duration.errors import UsageError
from taxi_duration.geo import UNKNOWN_ZONE, ZoneIndex, counts, spark_zones


@pytest.fixture(scope="module")
def index(shared_data: Path) -> ZoneIndex:
    return ZoneIndex.from_zip(shared_data / "taxi_zones.zip")


@pytest.mark.shared
def test_every_zone_holds_its_own_interior_point(index: ZoneIndex, shared_data: Path) -> None:
    zones = pd.read_csv(shared_data / "taxi_zone_centroids.csv").dropna(subset=["interior_lon"])
    assigned = index.assign(zones["interior_lon"], zones["interior_lat"])
    assert len(zones) == 263
    np.testing.assert_array_equal(assigned, zones["LocationID"].to_numpy())


@pytest.mark.shared
def test_points_outside_every_zone_and_missing_points_are_unknown(index: ZoneIndex) -> None:
    lon = [0.0, -74.0445, np.nan, -73.98, 500.0]  # the Gulf of Guinea, the harbor by Liberty Island, NaN
    lat = [0.0, 40.6892, 40.75, np.nan, 40.75]
    assigned = index.assign(lon, lat)
    assert assigned[[0, 2, 3, 4]].tolist() == [UNKNOWN_ZONE] * 4
    assert index.assign([-73.9855], [40.7580]).tolist() == [230]  # Times Square


@pytest.mark.shared
def test_the_kaggle_sample_lands_in_zones(index: ZoneIndex, shared_data: Path) -> None:
    trips = pd.read_csv(shared_data / "kaggle_nyc_trip_duration_sample_train.csv")
    pickups = counts(index.assign(trips["pickup_longitude"], trips["pickup_latitude"]))
    assert pickups["inside_a_zone"] + pickups["unknown_zone"] == len(trips)
    assert pickups["unknown_zone"] < 0.01 * len(trips)


@pytest.mark.spark
@pytest.mark.shared
def test_spark_assigns_what_the_local_index_assigns(index: ZoneIndex, shared_data: Path, spark: Any) -> None:
    trips = pd.read_csv(shared_data / "kaggle_nyc_trip_duration_sample_train.csv")
    frame = spark.createDataFrame(trips[["id", "dropoff_longitude", "dropoff_latitude"]]).repartition(3)
    out = spark_zones(frame, index, "dropoff_longitude", "dropoff_latitude", "do_zone").toPandas()
    expected = dict(zip(trips["id"], index.assign(trips["dropoff_longitude"], trips["dropoff_latitude"]), strict=True))
    assert len(out) == len(trips)
    assert all(expected[i] == z for i, z in zip(out["id"], out["do_zone"], strict=True))


def test_missing_or_broken_shapes_say_how_to_fetch_them(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="taxi-duration download --shapes"):
        ZoneIndex.from_zip(tmp_path / "taxi_zones.zip")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="not a zip archive"):
        ZoneIndex.from_zip(tmp_path / "broken.zip")
