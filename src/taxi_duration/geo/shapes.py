"""Zones from coordinates: the TLC's official zone shapes in a spatial index, queried a batch at a time.

Trips recorded before the TLC's zones (yellow 2009-2016, the Kaggle data) carry longitude and latitude
instead of zone ids. Every zone-based feature and the feature store need the ids, so each point is placed
in the zone polygon that holds it. The polygons are projected once, at load, from the shapefile's New York
State Plane (feet) to longitude and latitude, so a query needs no projection: one vectorized query of a
shapely `STRtree` finds the polygon of every point of a batch, and engines may run it from several threads
(a pyproj transformer may not be shared across threads). A point inside no zone (the sea, New Jersey, GPS
at 0, 0) gets `UNKNOWN_ZONE`.

`fill_zones` is the one rule for a batch of trips: a zone id the trip gives stays, a missing one comes from
its point. `Runtime.with_zones` (engines.py) runs the query where each engine runs: on Spark the index
travels to the executors as well-known binary in a broadcast variable and is queried inside an Arrow UDF.

The package ships the shapes (`PACKAGED_SHAPES`, 572 KB), so coordinates work offline and out of the box:
the TLC's `taxi_zones.zip` (EPSG:2263) projected to longitude and latitude as above, each polygon simplified
by 1e-6 degrees (about 0.1 m) and its vertices snapped to 1e-7 degrees (about 1 cm) by
`scripts/pack_zones.py`. Every one of the 13,100 pickup and dropoff points of the Kaggle and 2009 yellow
samples gets the zone the full shapes give, and so do 99.9998% of a uniform 1000 x 1000 grid over the city.
`zone_shapes` may still name the full `taxi_zones.zip` (or any TLC shapefile zip).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from taxi_duration.core.errors import UsageError

UNKNOWN_ZONE = 264  # the TLC's own "Unknown" zone
SHAPES_FILE = "taxi_zones.zip"
SHAPES_URL = "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zones.zip"
# The shapefile's LocationID column repeats 56 and 103; OBJECTID holds the right ids (1..263).
ID_FIELD = "OBJECTID"
WGS84 = "EPSG:4326"
PACKAGED_SHAPES = Path(__file__).with_name("data") / "taxi_zones.parquet"


def shapes_path(zone_shapes: Path | None) -> Path:
    """The zone shapes a setting names: its own file, or (unset) the shapes the package ships."""
    return zone_shapes or PACKAGED_SHAPES


@dataclass
class ZoneIndex:
    """Zone polygons (longitude, latitude), their ids, and a spatial index over them."""

    polygons: np.ndarray  # shapely geometries
    ids: np.ndarray  # int32, one per polygon

    def __post_init__(self) -> None:
        self._tree = shapely.STRtree(self.polygons)

    @classmethod
    def from_zip(cls, path: Path) -> ZoneIndex:
        """Read the TLC's `taxi_zones.zip` (shapefile parts inside a folder of the archive)."""
        # Imported here: only a shapefile needs them, and they took 0.1 s of every command's start.
        import pyproj
        import shapefile

        if not path.is_file():
            raise UsageError(
                f"zone shapes not found at {path}: fetch them with `taxi-duration download --shapes` "
                f"(or download {SHAPES_URL} there), or unset zone_shapes to use the packaged shapes"
            )
        try:
            with zipfile.ZipFile(path) as archive:
                parts = {
                    name.rsplit(".", 1)[-1].lower(): archive.read(name)
                    for name in archive.namelist()
                    if not name.startswith("__MACOSX") and name.lower().endswith((".shp", ".shx", ".dbf", ".prj"))
                }
        except zipfile.BadZipFile as exc:
            raise UsageError(f"{path}: not a zip archive ({exc})") from exc
        missing = {"shp", "shx", "dbf", "prj"} - set(parts)
        if missing:
            raise UsageError(f"{path}: no zone shapefile inside (missing .{', .'.join(sorted(missing))})")
        reader = shapefile.Reader(
            shp=io.BytesIO(parts["shp"]), shx=io.BytesIO(parts["shx"]), dbf=io.BytesIO(parts["dbf"])
        )
        to_degrees = pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(parts["prj"].decode()), WGS84, always_xy=True)
        planar = [shapely.geometry.shape(s.__geo_interface__) for s in reader.shapes()]
        polygons = np.array(shapely.transform(planar, lambda xy: np.column_stack(to_degrees.transform(*xy.T))))
        ids = np.array([record[ID_FIELD] for record in reader.records()], dtype=np.int32)
        return cls(polygons, ids)

    @classmethod
    def from_parquet(cls, path: Path) -> ZoneIndex:
        """Read shapes `to_parquet` wrote (the packaged ones)."""
        if not path.is_file():
            raise UsageError(f"zone shapes not found at {path}: unset zone_shapes to use the packaged shapes")
        table = pq.read_table(path)
        return cls.from_wkb((table.column("wkb").to_pylist(), table.column("location_id").to_pylist()))

    def to_parquet(self, path: Path, **about: object) -> None:
        """Write the shapes as zone id and well-known binary, with `about` (their origin) in the metadata."""
        wkb, ids = self.to_wkb()
        table = pa.table({"location_id": pa.array(ids, pa.int32()), "wkb": pa.array(wkb, pa.binary())})
        table = table.replace_schema_metadata({"about": json.dumps(about)})
        pq.write_table(table, path, compression="zstd", compression_level=19)

    def to_wkb(self) -> tuple[list[bytes], list[int]]:
        """A picklable form (well-known binary) for shipping the index to Spark executors."""
        return [shapely.to_wkb(p) for p in self.polygons], self.ids.tolist()

    @classmethod
    def from_wkb(cls, shipped: tuple[list[bytes], list[int]]) -> ZoneIndex:
        """The index `to_wkb` shipped."""
        wkb, ids = shipped
        return cls(np.array(shapely.from_wkb(wkb), dtype=object), np.asarray(ids, dtype=np.int32))

    def assign(self, longitude: Any, latitude: Any) -> np.ndarray:
        """The zone id of every point (WGS84 degrees); `UNKNOWN_ZONE` where no zone holds it or it is missing."""
        lon = np.asarray(longitude, dtype=np.float64)
        lat = np.asarray(latitude, dtype=np.float64)
        out = np.full(lon.shape, UNKNOWN_ZONE, dtype=np.int32)
        valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        if not valid.any():
            return out
        points, polygons = self._tree.query(shapely.points(lon[valid], lat[valid]), predicate="intersects")
        if not len(points):  # no point in any zone (a lone trip at sea): nothing to pick between
            return out
        # A point on a border touches two zones: the lower id wins, the same on every engine and run.
        order = np.lexsort((self.ids[polygons], points))
        points, polygons = points[order], polygons[order]
        first = np.r_[True, points[1:] != points[:-1]]
        inside = out[valid]
        inside[points[first]] = self.ids[polygons[first]]
        out[valid] = inside
        return out


@cache
def load_index(path: Path) -> ZoneIndex:
    """The index of the shapes at `path` (a TLC shapefile zip, or the packaged Parquet), read once per process."""
    return ZoneIndex.from_parquet(path) if path.suffix == ".parquet" else ZoneIndex.from_zip(path)


def fill_zones(
    index: ZoneIndex, points: Mapping[str, tuple[Any, Any]], given: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """The zone ids of a batch of trips, per zone column of `points`: the id `given` holds for the trip, and
    where it holds none (no such column, or None or NaN) the zone `index` places the trip's point in.

    `points` maps each zone column to its (longitudes, latitudes); every sequence is as long as the batch,
    and a missing coordinate is None or NaN. Only the trips missing an id are queried.
    """
    out: dict[str, np.ndarray] = {}
    for zone, (lon, lat) in points.items():
        longitude, latitude = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        known = np.asarray(given[zone] if given and zone in given else np.full(longitude.shape, np.nan), np.float64)
        missing = np.isnan(known)
        ids = np.where(missing, UNKNOWN_ZONE, known).astype(np.int32)
        ids[missing] = index.assign(longitude[missing], latitude[missing])
        out[zone] = ids
    return out
