"""Trips with coordinates instead of zones (Kaggle, yellow 2009-2016) read, validate and featurize on every
engine: the dropoff rebuilt from the duration, text codes turned into TLC codes, zones from the shapes the
package ships (tests on the real samples compare them with the full TLC shapes)."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taxi_duration.core import schema as s
from taxi_duration.core.errors import BadInputError, UsageError
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import featurize
from taxi_duration.geo.shapes import UNKNOWN_ZONE, load_index
from taxi_duration.geo.zones import centroids
from taxi_duration.ingest.inputs import check, check_all
from taxi_duration.ingest.quality import validate
from taxi_duration.ingest.readers import read_trips
from taxi_duration.monitor.legacy import haversine_km
from tests.conftest import ALL_ENGINES, online_features

on_every_engine = pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)

KM_PER_MILE = 1.609344
KAGGLE = "kaggle_nyc_trip_duration_sample_train.csv"
YELLOW_2009 = "yellow_tripdata_2009-01_sample1000.csv"
KAGGLE_HEADER = (
    "id,vendor_id,pickup_datetime,passenger_count,pickup_longitude,pickup_latitude,dropoff_longitude,"
    "dropoff_latitude,trip_duration\n"
)
# Times Square -> Upper West Side South, as the Kaggle files give a trip.
KAGGLE_ROW = "a,2,2016-03-13 01:59:00,1,-73.9855,40.7580,-73.9712,40.7831,3725\n"


def read(runtime: Runtime, path: Path) -> pd.DataFrame:
    with runtime.reading(path):
        frame = read_trips(runtime, check_all([path])).collect().to_pandas()
    return frame.sort_values([s.PICKUP, s.PU_LON, s.DO_LON], kind="stable").reset_index(drop=True)


@pytest.mark.shared
@on_every_engine
def test_kaggle_dropoff_is_pickup_plus_duration_and_zones_come_from_the_shapes(
    runtime: Runtime, shared_data: Path
) -> None:
    raw = pd.read_csv(shared_data / KAGGLE, parse_dates=["pickup_datetime"])
    raw = raw.sort_values(["pickup_datetime", "pickup_longitude", "dropoff_longitude"], kind="stable")
    trips = read(runtime, shared_data / KAGGLE)
    assert len(trips) == len(raw) == 5000
    assert (trips[s.DROPOFF] - trips[s.PICKUP] == pd.to_timedelta(raw["trip_duration"].to_numpy(), "s")).all()
    index = load_index(shared_data / "taxi_zones.zip")
    np.testing.assert_array_equal(trips[s.PU_ZONE], index.assign(raw["pickup_longitude"], raw["pickup_latitude"]))
    np.testing.assert_array_equal(trips[s.DO_ZONE], index.assign(raw["dropoff_longitude"], raw["dropoff_latitude"]))
    np.testing.assert_allclose(trips[s.PU_LON], raw["pickup_longitude"])
    assert trips[s.DISTANCE].isna().all()  # Kaggle has no metered distance
    assert set(trips[s.VENDOR]) == {1, 2}


@pytest.mark.shared
@on_every_engine
def test_yellow_2009_names_and_text_codes(runtime: Runtime, shared_data: Path) -> None:
    trips = read(runtime, shared_data / YELLOW_2009)
    assert len(trips) == 1000
    assert trips[s.VENDOR].value_counts().to_dict() == {2: 656, 1: 255, 3: 89}  # VTS, CMT, DDS
    # CASH and Cash are one code; Credit and CREDIT another; "No Charge" a third.
    assert trips[s.PAYMENT].value_counts().to_dict() == {2: 765, 1: 234, 3: 1}
    assert (trips[s.DROPOFF] < trips[s.PICKUP]).sum() == 17
    assert trips[s.DISTANCE].notna().all()
    assert trips[s.FARE].notna().all()
    assert (trips[s.SOURCE_MONTH] == 200901).all()
    assert 0 < (trips[s.PU_ZONE] == UNKNOWN_ZONE).sum() < 30  # GPS at (0, 0) and points off the map


@pytest.mark.shared
@on_every_engine
def test_validation_counts_zone_assignment_and_featurizes(runtime: Runtime, shared_data: Path, tmp_path: Path) -> None:
    files = check_all([shared_data / KAGGLE, shared_data / YELLOW_2009])
    report = validate(runtime, files, tmp_path / "out", features=True)
    assert report.zones_from_coordinates == {"points": 12000, "inside_a_zone": 11938, "unknown_zone": 62}
    assert report.input_rows == report.clean_rows + report.quarantined_rows == 6000
    assert report.by_reason["unknown_zone"] == 38
    assert "inside a zone | 11,938 | 99.48%" in (tmp_path / "out" / "report.md").read_text()
    clean = runtime.scan_parquet(tmp_path / "out" / "clean").collect().to_pandas()
    assert len(clean) == report.clean_rows
    assert not clean["pu_borough"].eq("Unknown").any()  # every clean trip sits in a real zone


@pytest.mark.shared
@on_every_engine
def test_a_kaggle_test_file_without_durations_reads_as_unlabeled(
    runtime: Runtime, shared_data: Path, tmp_path: Path
) -> None:
    path = _without(shared_data / "kaggle_nyc_trip_duration_sample_test.csv", "trip_duration", tmp_path)
    trips = read(runtime, path)
    assert len(trips) == 250
    assert trips[s.DROPOFF].isna().all()
    assert trips[s.PU_ZONE].notna().all()
    featurize(runtime, read_trips(runtime, check_all([path]))).collect()


def _without(source: Path, column: str, tmp_path: Path) -> Path:
    frame = pd.read_csv(source).drop(columns=[column])
    path = tmp_path / source.name
    frame.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
    return path


def test_a_file_with_neither_zones_nor_coordinates_is_refused(tmp_path: Path) -> None:
    path = _without(_kaggle_file(tmp_path / "full"), "dropoff_latitude", tmp_path)
    with pytest.raises(BadInputError, match=r"pu_location_id \(as PULocationID.*or all four coordinates"):
        check(path)


@on_every_engine
def test_without_the_shapes_the_message_says_how_to_fetch_them(runtime: Runtime, tmp_path: Path) -> None:
    runtime.shapes = tmp_path / "taxi_zones.zip"
    with pytest.raises(UsageError, match="taxi-duration download --shapes"):
        read_trips(runtime, check_all([_kaggle_file(tmp_path)]))


def _kaggle_file(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "trips.csv"
    path.write_text(KAGGLE_HEADER + KAGGLE_ROW)
    return path


@on_every_engine
def test_the_duration_rebuilds_whole_seconds(runtime: Runtime, tmp_path: Path) -> None:
    (trip,) = read(runtime, _kaggle_file(tmp_path)).to_dict("records")
    assert trip[s.DROPOFF] - trip[s.PICKUP] == timedelta(seconds=3725)
    assert (trip[s.PU_ZONE], trip[s.DO_ZONE]) == (230, 239)  # Times Square -> Upper West Side South


@pytest.mark.shared
@on_every_engine
def test_geometry_from_coordinates_and_from_centroids(runtime: Runtime, shared_data: Path) -> None:
    kaggle = featurize(runtime, read_trips(runtime, check_all([shared_data / KAGGLE])), keep=(s.PICKUP, *s.COORDINATES))
    trips = kaggle.collect().to_pandas()
    lon1, lat1, lon2, lat2 = (trips[c].to_numpy() for c in s.COORDINATES)
    np.testing.assert_allclose(trips["haversine_mi"], haversine_km(lon1, lat1, lon2, lat2) / KM_PER_MILE, rtol=1e-6)
    east = np.radians(lon2 - lon1) * np.cos(np.radians((lat1 + lat2) / 2))
    north = np.radians(lat2 - lat1)
    bearing = np.degrees(np.arctan2(east, north)) % 360
    moved = (east != 0) | (north != 0)
    off = np.abs((trips["bearing_deg"].to_numpy() - bearing + 180) % 360 - 180)
    assert off[moved].max() < 1e-3  # degrees
    assert ((trips["manhattan_mi"] >= trips["haversine_mi"] - 1e-9) | trips["haversine_mi"].isna()).all()
    # A zone-era trip: the same features from the zones' centroids (Times Square to JFK).
    zone_era = online_features({s.PICKUP: trips[s.PICKUP].iloc[0], s.PU_ZONE: 230, s.DO_ZONE: 132})
    (tsq_lon, tsq_lat), (jfk_lon, jfk_lat) = centroids()[230], centroids()[132]
    assert zone_era["haversine_mi"] == pytest.approx(haversine_km(tsq_lon, tsq_lat, jfk_lon, jfk_lat) / KM_PER_MILE)
    assert 120 < zone_era["bearing_deg"] < 135  # south-east


@on_every_engine
def test_yellow_2010_to_2016_names_codes_and_spaced_headers(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "yellow_tripdata_2014-03.csv"
    path.write_text(
        "vendor_id, pickup_datetime, dropoff_datetime, passenger_count, trip_distance, pickup_longitude,"
        " pickup_latitude, rate_code, store_and_fwd_flag, dropoff_longitude, dropoff_latitude, payment_type,"
        " fare_amount\n"
        "CMT,2014-03-01 01:07:38,2014-03-01 01:16:26,1,2.0,-73.9855,40.7580,1,N,-73.9712,40.7831,CRD,9.5\n"
        "VTS,2014-03-01 01:08:03,2014-03-01 01:12:51,2,0.9,-73.9855,40.7580,1,,-73.9855,40.7580,CSH,5.5\n"
    )
    first, second = read(runtime, path).to_dict("records")
    assert (first[s.VENDOR], first[s.PAYMENT], first[s.RATECODE]) == (1, 1, 1)
    assert (second[s.VENDOR], second[s.PAYMENT], second[s.PASSENGERS]) == (2, 2, 2)
    assert (first[s.PU_ZONE], first[s.DO_ZONE], second[s.DO_ZONE]) == (230, 239, 230)
    assert first[s.DISTANCE] == 2.0
    assert first[s.SOURCE_MONTH] == 201403
