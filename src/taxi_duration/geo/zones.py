"""The TLC taxi zones: borough, airport and centroid of each zone id, from the packaged zone table.

The table ships inside `data/calibration.json` (derived from the TLC's zone lookup and shapefile by
`scripts/calibrate.py`), so zone facts have one home and a fresh clone needs no download.
"""

from __future__ import annotations

from functools import cache

from taxi_duration.geo.calibration import raw_profile

UNKNOWN_BOROUGH = "Unknown"
# JFK, LaGuardia, Newark: trips to and from them are long, priced apart, and timed by traffic on highways.
AIRPORT_ZONES: tuple[int, ...] = (1, 132, 138)


@cache
def boroughs() -> dict[int, str]:
    """Zone id -> borough name, for all 265 TLC zone ids (264/265 are "Unknown")."""
    zones = raw_profile()["zones"]
    return {int(z): (b or UNKNOWN_BOROUGH) for z, b in zip(zones["id"], zones["borough"], strict=True)}


@cache
def centroids() -> dict[int, tuple[float, float]]:
    """Zone id -> (longitude, latitude) of its centroid, for the 263 zones that have a shape."""
    zones = raw_profile()["zones"]
    return {
        int(z): (float(lon), float(lat))
        for z, lon, lat in zip(zones["id"], zones["lon"], zones["lat"], strict=True)
        if lon is not None and lat is not None
    }
