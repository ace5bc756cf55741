"""The DuckDB SQL reference: the job as one `COPY (...) TO` statement, read, clean, featurize and write in one
pass, then the counts read back from what it wrote."""

from __future__ import annotations

from pathlib import Path

from taxi_duration.features.definitions import holiday_keys
from taxi_duration.geo.zones import AIRPORT_ZONES
from taxi_duration.ops.bench.reference.spec import (
    COORDINATES,
    DUPLICATE_KEY,
    KEPT,
    OFFSETS_SQL,
    UNKNOWN,
    by_status,
    geometry_sql,
    reasons_sql,
    zone_rows,
)


def duckdb_sql(out: Path, files: list[str]) -> dict[str, int]:
    """The job as one DuckDB statement (plus the count)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"""
    COPY (
      WITH {_read_sql(files)},
      {_clean_sql()}
      {_features_sql()}
    ) TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (_status))
    """)
    rows = con.execute(
        f"SELECT _status, source_file, reasons, repairs, count(*) "
        f"FROM read_parquet('{out}/*/*.parquet', hive_partitioning = true) GROUP BY ALL"
    ).fetchall()
    return by_status(rows)


def _read_sql(files: list[str]) -> str:
    """The zones (id, borough, centroid) and the trips read from `files` under the project's column names."""
    zones = ", ".join(
        f"({z}, '{b}', {'NULL' if lon is None else lon}, {'NULL' if lat is None else lat})"
        for z, b, lon, lat in zone_rows()
    )
    coordinates = ", ".join(f"NULL::DOUBLE AS {c}" for c in COORDINATES)
    return f"""zones(zone, borough, lon, lat) AS (
        SELECT col0::INT, col1, col2::DOUBLE, col3::DOUBLE FROM (VALUES {zones})),
      trips AS (
        SELECT lpep_pickup_datetime AS pickup_datetime, lpep_dropoff_datetime AS dropoff_datetime,
               PULocationID::INT AS pu_location_id, DOLocationID::INT AS do_location_id,
               passenger_count::INT AS passenger_count, trip_distance::DOUBLE AS trip_distance,
               VendorID::INT AS vendor_id, RatecodeID::INT AS ratecode_id, payment_type::INT AS payment_type,
               fare_amount::DOUBLE AS fare_amount, {coordinates},
               'green' AS service, parse_filename(filename) AS source_file,
               replace(regexp_extract(filename, '\\d{{4}}-\\d{{2}}'), '-', '')::INT AS source_month
        FROM read_parquet({files!r}, filename = true))"""


def _clean_sql() -> str:
    """The repair, the rules' reasons, each end's zone and the dropoff's offset in miles (CTEs over `trips`)."""
    offsets = ", ".join(f"{sql} AS {name}" for name, sql in OFFSETS_SQL.items())
    return f"""flagged AS (
        SELECT * REPLACE (CASE WHEN passenger_count IS NULL OR passenger_count = 0 THEN 1
                               ELSE passenger_count END AS passenger_count),
               passenger_count AS raw_passengers,
               date_diff('second', pickup_datetime, dropoff_datetime) AS dur_s,
               row_number() OVER (PARTITION BY {", ".join(DUPLICATE_KEY)}) AS copy_no
        FROM trips),
      reasoned AS (
        SELECT *, nullif({reasons_sql()}, '') AS reasons,
               CASE WHEN raw_passengers IS NULL OR raw_passengers = 0 THEN 'passenger_count_defaulted' END AS repairs
        FROM flagged),
      placed AS (
        SELECT r.*, coalesce(pz.borough, '{UNKNOWN}') AS pu_borough, coalesce(dz.borough, '{UNKNOWN}') AS do_borough,
               pz.lon AS pu_lon, pz.lat AS pu_lat, dz.lon AS do_lon, dz.lat AS do_lat
        FROM reasoned r
        LEFT JOIN zones pz ON pz.zone = r.pu_location_id
        LEFT JOIN zones dz ON dz.zone = r.do_location_id),
      measured AS (SELECT *, {offsets} FROM placed)"""


def _features_sql() -> str:
    """The output's SELECT over `measured`: the kept columns, the target, every feature and the status."""
    holidays = ", ".join(map(str, holiday_keys()))
    airports = ", ".join(map(str, AIRPORT_ZONES))
    return f"""SELECT {", ".join(KEPT[:-1])}, dur_s / 60.0 AS duration_min,
             hour(pickup_datetime)::INT AS pickup_hour, isodow(pickup_datetime)::INT AS pickup_weekday,
             (isodow(pickup_datetime) >= 6)::INT AS is_weekend, month(pickup_datetime)::INT AS pickup_month,
             ((year(pickup_datetime) * 10000 + month(pickup_datetime) * 100 + day(pickup_datetime))
                IN ({holidays}))::INT AS is_holiday,
             ((isodow(pickup_datetime) - 1) * 24 + hour(pickup_datetime))::INT AS hour_of_week,
             pu_location_id, do_location_id, pu_location_id || '-' || do_location_id AS zone_pair,
             pu_borough, do_borough, pu_borough || '-' || do_borough AS borough_pair,
             (pu_location_id IN ({airports}))::INT AS pu_airport, (do_location_id IN ({airports}))::INT AS do_airport,
             {geometry_sql()},
             passenger_count, coalesce(vendor_id, 0) AS vendor_id, trip_distance,
             CASE WHEN reasons IS NULL THEN 'clean' ELSE 'quarantine' END AS _status
      FROM measured"""
