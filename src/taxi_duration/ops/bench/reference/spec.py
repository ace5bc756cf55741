"""What every reference shares: the output's columns, the rules and the geometry in SQL (DuckDB and Spark read
the same text), the zones with their centroids, a file's month, and the counts they print."""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from taxi_duration.core.schema import DO_LAT, DO_LON, PU_LAT, PU_LON, TIME_ZONE, TRIP_FIELDS
from taxi_duration.features.definitions import EARTH_RADIUS_MI, MANHATTAN_GRID_DEG, NO_POINT
from taxi_duration.geo.zones import boroughs, centroids
from taxi_duration.ingest.validation import (
    CLOCK_ALLOWANCE,
    FIRST_DAY,
    KNOWN_ZONES,
    MAX_DISTANCE_MI,
    MAX_DURATION_S,
    MAX_PASSENGERS,
    MAX_SPEED_MPH,
    MIN_DURATION_S,
)

# The project's duplicate key, a constant like the rules' limits: two rows equal on all of it are one trip.
DUPLICATE_KEY = TRIP_FIELDS
COORDINATES = (PU_LON, PU_LAT, DO_LON, DO_LAT)
# The output's columns, in the project's order: the trip as read (zones, passengers, vendor and distance come
# with the features), reasons and repairs, the target, then every feature.
FEATURES = (
    "pickup_hour",
    "pickup_weekday",
    "is_weekend",
    "pickup_month",
    "is_holiday",
    "hour_of_week",
    "pu_location_id",
    "do_location_id",
    "zone_pair",
    "pu_borough",
    "do_borough",
    "borough_pair",
    "pu_airport",
    "do_airport",
    "haversine_mi",
    "manhattan_mi",
    "bearing_deg",
    "passenger_count",
    "vendor_id",
    "trip_distance",
)
KEPT = (
    "pickup_datetime",
    "dropoff_datetime",
    "ratecode_id",
    "payment_type",
    "fare_amount",
    *COORDINATES,
    "service",
    "source_file",
    "source_month",
    "reasons",
    "repairs",
    "duration_min",
)
OUTPUT = (*KEPT, *FEATURES)
UNKNOWN = "Unknown"
SIN_GRID, COS_GRID = math.sin(math.radians(MANHATTAN_GRID_DEG)), math.cos(math.radians(MANHATTAN_GRID_DEG))


def last_day() -> date:
    """The last pickup day that is not in the future: tomorrow in New York (the clock allowance)."""
    return (datetime.now(ZoneInfo(TIME_ZONE)) + CLOCK_ALLOWANCE).date()


def source_month(path: str) -> int:
    """YYYYMM from a TLC file name (`green_tripdata_2023-01.parquet`)."""
    year, month = re.search(r"(\d{4})-(\d{2})", Path(path).name).groups()  # type: ignore[union-attr]
    return int(year) * 100 + int(month)


def reasons_sql() -> str:
    """Every rule in SQL that DuckDB and Spark both read, over the repaired trip, `dur_s` and `copy_no`."""
    low, high = KNOWN_ZONES
    return f"""concat_ws(',',
    CASE WHEN pickup_datetime IS NULL OR dropoff_datetime IS NULL OR pu_location_id IS NULL
              OR do_location_id IS NULL OR trip_distance IS NULL THEN 'missing_required' END,
    CASE WHEN dur_s < 0 THEN 'dropoff_before_pickup' END,
    CASE WHEN dur_s >= 0 AND dur_s < {MIN_DURATION_S} THEN 'duration_too_short' END,
    CASE WHEN dur_s > {MAX_DURATION_S} THEN 'duration_too_long' END,
    CASE WHEN year(pickup_datetime) * 100 + month(pickup_datetime) <> source_month THEN 'pickup_outside_month' END,
    CASE WHEN CAST(pickup_datetime AS DATE) < DATE '{FIRST_DAY}'
              OR CAST(pickup_datetime AS DATE) > DATE '{last_day()}' THEN 'pickup_out_of_range' END,
    CASE WHEN pu_location_id NOT BETWEEN {low} AND {high} OR do_location_id NOT BETWEEN {low} AND {high}
         THEN 'unknown_zone' END,
    CASE WHEN trip_distance <= 0 THEN 'non_positive_distance' END,
    CASE WHEN trip_distance > {MAX_DISTANCE_MI} THEN 'huge_distance' END,
    CASE WHEN dur_s > 0 AND trip_distance * 3600 > {MAX_SPEED_MPH} * dur_s THEN 'impossible_speed' END,
    CASE WHEN passenger_count < 0 OR passenger_count > {MAX_PASSENGERS} THEN 'bad_passenger_count' END,
    CASE WHEN fare_amount < 0 THEN 'negative_fare' END,
    CASE WHEN copy_no > 1 THEN 'duplicate' END)"""


# The geometry in SQL that DuckDB and Spark both read, over the end points (pu_lon, pu_lat, do_lon, do_lat)
# and the dropoff's offset in miles east and north (east_mi, north_mi) on the plane at the mean latitude.
OFFSETS_SQL = {
    "east_mi": f"radians(do_lon - pu_lon) * cos(radians((pu_lat + do_lat) / 2)) * {EARTH_RADIUS_MI}",
    "north_mi": f"radians(do_lat - pu_lat) * {EARTH_RADIUS_MI}",
}
GEOMETRY_SQL = {
    "haversine_mi": f"2 * {EARTH_RADIUS_MI} * asin(sqrt(pow(sin(radians(do_lat - pu_lat) / 2), 2) "
    "+ cos(radians(pu_lat)) * cos(radians(do_lat)) * pow(sin(radians(do_lon - pu_lon) / 2), 2)))",
    "manhattan_mi": f"abs(east_mi * {SIN_GRID} + north_mi * {COS_GRID}) "
    f"+ abs(east_mi * {COS_GRID} - north_mi * {SIN_GRID})",
    "bearing_deg": "CASE WHEN atan2(east_mi, north_mi) < 0 THEN degrees(atan2(east_mi, north_mi)) + 360 "
    "ELSE degrees(atan2(east_mi, north_mi)) END",
}


def geometry_sql() -> str:
    """The three geometry features as a SELECT list, -1 where an end has no point."""
    return ",\n".join(
        f"CASE WHEN east_mi IS NULL THEN {NO_POINT} ELSE {sql} END AS {name}" for name, sql in GEOMETRY_SQL.items()
    )


def zone_rows() -> list[tuple[int, str, float | None, float | None]]:
    """Zone id, borough and centroid (None for 264 and 265), all 265 zones."""
    points = centroids()
    return [(z, b, *points.get(z, (None, None))) for z, b in boroughs().items()]


def by_status(rows: list[tuple[str, str, str | None, str | None, int]]) -> dict[str, int]:
    """Rows by status (`clean`, `quarantine`) from counts by status, file, reasons and repairs."""
    totals: dict[str, int] = {}
    for status, *_, count in rows:
        totals[status] = totals.get(status, 0) + count
    return totals
