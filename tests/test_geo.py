"""Zones from coordinates, with the TLC's real zone shapes and with the ones the package ships: every zone
finds itself, points outside every zone get the unknown zone, and the packaged shapes place the real sample
points as the full ones do. Reading coordinate files on every engine is in test_coordinates.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from taxi_duration.core.config import load_settings
from taxi_duration.core.errors import UsageError
from taxi_duration.geo.shapes import PACKAGED_SHAPES, UNKNOWN_ZONE, ZoneIndex, fill_zones, load_index, shapes_path


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


def test_points_that_all_miss_every_zone_are_unknown() -> None:
    square = shapely.box(-74.0, 40.7, -73.9, 40.8)
    index = ZoneIndex(np.array([square]), np.array([7], dtype=np.int32))
    assert index.assign([-73.5], [40.78]).tolist() == [UNKNOWN_ZONE]  # once an IndexError, a 500 in the API
    assert index.assign([-73.5, -73.95], [40.78, 40.75]).tolist() == [UNKNOWN_ZONE, 7]


def test_fill_zones_keeps_the_ids_a_trip_gives_and_places_only_the_missing_ones() -> None:
    square = shapely.box(-74.0, 40.7, -73.9, 40.8)
    index = ZoneIndex(np.array([square]), np.array([7], dtype=np.int32))
    points = {"zone": ([-73.95, -73.95, -73.95, -73.5, None], [40.75, 40.75, 40.75, 40.75, 40.75])}
    given = {"zone": [3, None, np.nan, None, None]}  # a given id stays, even where the point says otherwise
    assert fill_zones(index, points, given)["zone"].tolist() == [3, 7, 7, UNKNOWN_ZONE, UNKNOWN_ZONE]
    assert fill_zones(index, points)["zone"].tolist() == [7, 7, 7, UNKNOWN_ZONE, UNKNOWN_ZONE]
    assert fill_zones(index, points, {"other": [1] * 5})["zone"].dtype == np.int32


@pytest.mark.shared
def test_the_kaggle_sample_lands_in_zones(index: ZoneIndex, shared_data: Path) -> None:
    trips = pd.read_csv(shared_data / "kaggle_nyc_trip_duration_sample_train.csv")
    zones = index.assign(trips["pickup_longitude"], trips["pickup_latitude"])
    assert zones.shape == (len(trips),)
    assert 0 < (zones == UNKNOWN_ZONE).sum() < 0.01 * len(trips)


def test_missing_or_broken_shapes_say_how_to_fetch_them(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="taxi-duration download --shapes"):
        ZoneIndex.from_zip(tmp_path / "taxi_zones.zip")
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="not a zip archive"):
        ZoneIndex.from_zip(tmp_path / "broken.zip")


def test_the_packaged_shapes_are_the_default_and_place_landmarks() -> None:
    index = load_index(shapes_path(load_settings().zone_shapes))
    assert index is load_index(PACKAGED_SHAPES)
    assert sorted(index.ids.tolist()) == list(range(1, 264))
    assert shapely.is_valid(index.polygons).all()
    # Times Square, JFK's terminals, LaGuardia, Newark's terminals, the Statue of Liberty's harbor.
    lon = [-73.9855, -73.7781, -73.8740, -74.1745, -74.0300]
    lat = [40.7580, 40.6413, 40.7769, 40.6895, 40.6700]
    assert index.assign(lon, lat).tolist() == [230, 132, 138, 1, UNKNOWN_ZONE]


@pytest.mark.shared
def test_the_packaged_shapes_place_the_real_samples_as_the_full_ones_do(index: ZoneIndex, shared_data: Path) -> None:
    packaged = load_index(PACKAGED_SHAPES)
    for name in ("kaggle_nyc_trip_duration_sample_train.csv", "kaggle_nyc_trip_duration_sample_val.csv"):
        trips = pd.read_csv(shared_data / name)
        for lon, lat in (("pickup_longitude", "pickup_latitude"), ("dropoff_longitude", "dropoff_latitude")):
            np.testing.assert_array_equal(packaged.assign(trips[lon], trips[lat]), index.assign(trips[lon], trips[lat]))
    zones = pd.read_csv(shared_data / "taxi_zone_centroids.csv").dropna(subset=["interior_lon"])
    np.testing.assert_array_equal(packaged.assign(zones["interior_lon"], zones["interior_lat"]), zones["LocationID"])


def test_a_missing_packed_file_says_to_use_the_packaged_shapes(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unset zone_shapes"):
        ZoneIndex.from_parquet(tmp_path / "zones.parquet")
