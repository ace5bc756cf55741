"""Pack the TLC zone shapes into the compact file the package ships, and measure what packing costs.

Usage (from the repository root):

    python scripts/pack_zones.py [DATA_DIR]        # DATA_DIR defaults to ../shared/data

Reads `DATA_DIR/taxi_zones.zip`, the TLC's official zone shapefile
(https://d37ci6vzurychx.cloudfront.net/misc/taxi_zones.zip: 263 polygons in New York State Plane Long Island,
EPSG:2263, feet), projects it to longitude and latitude as `geo.ZoneIndex.from_zip` does, simplifies each
polygon by `TOLERANCE_DEG`, snaps every vertex to a `GRID_DEG` grid, and writes
`src/taxi_duration/geo/data/taxi_zones.parquet` (zone id and well-known binary per zone). Then it assigns the
same points with the full and the packed shapes and prints how many agree: every pickup and dropoff of the
Kaggle and 2009 yellow samples, and a uniform grid of points over the zones' bounding box.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from taxi_duration.geo.shapes import PACKAGED_SHAPES, SHAPES_FILE, ZoneIndex

REPO = Path(__file__).resolve().parents[1]
# 1e-6 degrees is about 0.1 m (0.11 m of latitude, 0.08 m of longitude at New York): a quarter of the
# vertices go, and no sample point changes zone. 5e-6 (0.5 m) would save another 160 KB but move 10 of the
# 11,100 Kaggle points.
TOLERANCE_DEG = 1e-6
GRID_DEG = 1e-7  # about 1 cm: vertices as written, with no float noise in the last digits
KAGGLE_POINTS = (("pickup_longitude", "pickup_latitude"), ("dropoff_longitude", "dropoff_latitude"))
SAMPLES = {
    "kaggle_nyc_trip_duration_sample_train.csv": KAGGLE_POINTS,
    "kaggle_nyc_trip_duration_sample_val.csv": KAGGLE_POINTS,
    "kaggle_nyc_trip_duration_sample_test.csv": KAGGLE_POINTS,
    "yellow_tripdata_2009-01_sample1000.csv": (("Start_Lon", "Start_Lat"), ("End_Lon", "End_Lat")),
}
GRID_STEPS = 1000  # 1000 x 1000 points over the bounding box: one every ~50 m


def pack(full: ZoneIndex) -> ZoneIndex:
    """The simplified, snapped shapes."""
    simplified = shapely.set_precision(shapely.simplify(full.polygons, TOLERANCE_DEG), GRID_DEG)
    return ZoneIndex(np.asarray(simplified, dtype=object), full.ids)


def sample_points(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every pickup and dropoff point of the real samples (longitude, latitude)."""
    lon, lat = [], []
    for name, points in SAMPLES.items():
        trips = pd.read_csv(data / name)
        for x, y in points:
            lon.append(trips[x].to_numpy())
            lat.append(trips[y].to_numpy())
    return np.concatenate(lon), np.concatenate(lat)


def grid_points(full: ZoneIndex) -> tuple[np.ndarray, np.ndarray]:
    """A uniform grid over the zones' bounding box."""
    west, south, east, north = shapely.total_bounds(full.polygons)
    lon, lat = np.meshgrid(np.linspace(west, east, GRID_STEPS), np.linspace(south, north, GRID_STEPS))
    return lon.ravel(), lat.ravel()


def agreement(full: ZoneIndex, packed: ZoneIndex, lon: np.ndarray, lat: np.ndarray) -> str:
    """How many points both indexes put in the same zone."""
    same = int((full.assign(lon, lat) == packed.assign(lon, lat)).sum())
    return f"{same:,} of {len(lon):,} ({100 * same / len(lon):.4f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=REPO.parent / "shared" / "data")
    data = parser.parse_args().data
    full = ZoneIndex.from_zip(data / SHAPES_FILE)
    packed = pack(full)
    packed.to_parquet(PACKAGED_SHAPES, source=f"{SHAPES_FILE}, EPSG:2263", tolerance_deg=TOLERANCE_DEG)
    vertices = (int(shapely.get_num_coordinates(g).sum()) for g in (full.polygons, packed.polygons))
    print(f"wrote {PACKAGED_SHAPES.relative_to(REPO)}: {PACKAGED_SHAPES.stat().st_size:,} bytes")
    print("vertices: {:,} full, {:,} packed".format(*vertices))
    print(f"sample points in the same zone: {agreement(full, packed, *sample_points(data))}")
    print(f"grid points in the same zone:   {agreement(full, packed, *grid_points(full))}")


if __name__ == "__main__":
    main()
