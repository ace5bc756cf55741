"""Zones from coordinates: the TLC's official zone shapes in a spatial index, queried a batch at a time.

Trips recorded before the TLC's zones (yellow 2009-2016, the Kaggle data) carry longitude and latitude
instead of zone ids. Every zone-based feature and the feature store need the ids, so each point is placed
in the zone polygon that holds it: points are projected into the shapefile's own coordinate system (New
York State Plane, feet), and one vectorized query of a shapely `STRtree` finds the polygon of every point
of a batch. A point inside no zone (the sea, New Jersey, GPS at 0, 0) gets `UNKNOWN_ZONE`.

On Spark the index travels to the executors as well-known binary in a broadcast variable and is queried
inside an Arrow UDF, one Arrow batch at a time.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # module level: Spark reads the Arrow UDF's type hints from this module's names
import pyproj
import shapefile
import shapely

from taxi_duration.errors import UsageError

UNKNOWN_ZONE = 264  # the TLC's own "Unknown" zone
SHAPES_FILE = "taxi_zones.zip"
SHAPES_URL = "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zones.zip"
# The shapefile's LocationID column repeats 56 and 103; OBJECTID holds the right ids (1..263).
ID_FIELD = "OBJECTID"
WGS84 = "EPSG:4326"


@dataclass
class ZoneIndex:
    """Zone polygons (in the shapefile's projection), their ids, and a spatial index over them."""

    polygons: np.ndarray  # shapely geometries
    ids: np.ndarray  # int32, one per polygon
    crs_wkt: str

    def __post_init__(self) -> None:
        self._tree = shapely.STRtree(self.polygons)
        self._to_plane = pyproj.Transformer.from_crs(WGS84, pyproj.CRS.from_wkt(self.crs_wkt), always_xy=True)

    @classmethod
    def from_zip(cls, path: Path) -> ZoneIndex:
        """Read the TLC's `taxi_zones.zip` (shapefile parts inside a folder of the archive)."""
        if not path.is_file():
            raise UsageError(
                f"zone shapes not found at {path}: fetch them with `taxi-duration download --shapes` "
                f"(or download {SHAPES_URL} there)"
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
        polygons = np.array([shapely.geometry.shape(s.__geo_interface__) for s in reader.shapes()], dtype=object)
        ids = np.array([record[ID_FIELD] for record in reader.records()], dtype=np.int32)
        return cls(polygons, ids, parts["prj"].decode())

    def to_wkb(self) -> tuple[list[bytes], list[int], str]:
        """A picklable form (well-known binary) for shipping the index to Spark executors."""
        return [shapely.to_wkb(p) for p in self.polygons], self.ids.tolist(), self.crs_wkt

    @classmethod
    def from_wkb(cls, shipped: tuple[list[bytes], list[int], str]) -> ZoneIndex:
        """The index `to_wkb` shipped."""
        wkb, ids, crs = shipped
        return cls(np.array(shapely.from_wkb(wkb), dtype=object), np.asarray(ids, dtype=np.int32), crs)

    def assign(self, longitude: Any, latitude: Any) -> np.ndarray:
        """The zone id of every point (WGS84 degrees); `UNKNOWN_ZONE` where no zone holds it or it is missing."""
        lon = np.asarray(longitude, dtype=np.float64)
        lat = np.asarray(latitude, dtype=np.float64)
        out = np.full(lon.shape, UNKNOWN_ZONE, dtype=np.int32)
        valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
        if not valid.any():
            return out
        x, y = self._to_plane.transform(lon[valid], lat[valid])
        points, polygons = self._tree.query(shapely.points(x, y), predicate="intersects")
        # A point on a border touches two zones: the lower id wins, the same on every engine and run.
        order = np.lexsort((self.ids[polygons], points))
        points, polygons = points[order], polygons[order]
        first = np.r_[True, points[1:] != points[:-1]]
        inside = out[valid]
        inside[points[first]] = self.ids[polygons[first]]
        out[valid] = inside
        return out


def counts(zones: np.ndarray) -> dict[str, int]:
    """How many points landed inside a zone and how many got the unknown zone."""
    unknown = int(np.count_nonzero(zones == UNKNOWN_ZONE))
    return {"inside_a_zone": int(zones.size) - unknown, "unknown_zone": unknown}


def spark_zones(frame: Any, index: ZoneIndex, longitude: str, latitude: str, out: str) -> Any:
    """Add `out` (int zone id) to a Spark frame, from its `longitude` and `latitude` columns."""
    from pyspark.sql.functions import arrow_udf

    shipped = frame.sparkSession.sparkContext.broadcast(index.to_wkb())
    built: dict[str, ZoneIndex] = {}  # travels with the function: one index per task, not per batch

    @arrow_udf("int")  # type: ignore[call-overload]
    def assign(lon: pa.Array, lat: pa.Array) -> pa.Array:
        if "index" not in built:
            built["index"] = ZoneIndex.from_wkb(shipped.value)
        zones = built["index"].assign(lon.to_numpy(zero_copy_only=False), lat.to_numpy(zero_copy_only=False))
        return pa.array(zones, type=pa.int32())

    return frame.withColumn(out, assign(frame[longitude], frame[latitude]))
