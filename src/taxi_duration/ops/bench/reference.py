"""The references our engines are measured against: the prepare job written by hand, as a user would.

`duckdb-sql` is one DuckDB SQL statement; `pyspark` is plain PySpark DataFrame code; `polars` is a Polars lazy
query from `scan_parquet` to a streaming, partitioned `sink_parquet`. Each is hand-tuned as an expert in that
engine would write it, and does the work of `taxi-duration validate --features` on TLC green Parquet files:
normalize, repair, apply every rule (the duplicate check over the 14 trip fields), compute the features and the
target, write clean and quarantined rows in one partitioned write, and count rows by file, reasons and repairs
(what the quality report is made of). Their rows and columns are the project's, geometry included: the tests
compare them. They are written without the package's transformations (only its constants, zone table,
centroids and holidays, and the one Spark session builder, so both Spark runs share their settings), with the
engines' own functions (`asin`, `atan2`), so they show what the package's abstractions cost.

TLC green files since 2014 carry zone ids and no coordinates: the coordinate columns are null, and the
geometry runs between the zones' centroids (-1 where a zone has none, 264 and 265).

Run: `python -m taxi_duration.ops.bench.reference {duckdb-sql|pyspark|polars} OUT FILE...`; prints the counts as JSON.
"""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from taxi_duration.core.schema import DO_LAT, DO_LON, PU_LAT, PU_LON, TIME_ZONE, TRIP_FIELDS
from taxi_duration.features.definitions import EARTH_RADIUS_MI, MANHATTAN_GRID_DEG, NO_POINT, holiday_keys
from taxi_duration.geo.zones import AIRPORT_ZONES, boroughs, centroids
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


def duckdb_sql(out: Path, files: list[str]) -> dict[str, int]:
    """The job as one DuckDB statement (plus the count)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    zones = ", ".join(
        f"({z}, '{b}', {'NULL' if lon is None else lon}, {'NULL' if lat is None else lat})"
        for z, b, lon, lat in zone_rows()
    )
    holidays = ", ".join(map(str, holiday_keys()))
    airports = ", ".join(map(str, AIRPORT_ZONES))
    coordinates = ", ".join(f"NULL::DOUBLE AS {c}" for c in COORDINATES)
    offsets = ", ".join(f"{sql} AS {name}" for name, sql in OFFSETS_SQL.items())
    con.execute(f"""
    COPY (
      WITH zones(zone, borough, lon, lat) AS (
        SELECT col0::INT, col1, col2::DOUBLE, col3::DOUBLE FROM (VALUES {zones})),
      trips AS (
        SELECT lpep_pickup_datetime AS pickup_datetime, lpep_dropoff_datetime AS dropoff_datetime,
               PULocationID::INT AS pu_location_id, DOLocationID::INT AS do_location_id,
               passenger_count::INT AS passenger_count, trip_distance::DOUBLE AS trip_distance,
               VendorID::INT AS vendor_id, RatecodeID::INT AS ratecode_id, payment_type::INT AS payment_type,
               fare_amount::DOUBLE AS fare_amount, {coordinates},
               'green' AS service, parse_filename(filename) AS source_file,
               replace(regexp_extract(filename, '\\d{{4}}-\\d{{2}}'), '-', '')::INT AS source_month
        FROM read_parquet({files!r}, filename = true)),
      flagged AS (
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
      measured AS (SELECT *, {offsets} FROM placed)
      SELECT {", ".join(KEPT[:-1])}, dur_s / 60.0 AS duration_min,
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
      FROM measured
    ) TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (_status))
    """)
    rows = con.execute(
        f"SELECT _status, source_file, reasons, repairs, count(*) "
        f"FROM read_parquet('{out}/*/*.parquet', hive_partitioning = true) GROUP BY ALL"
    ).fetchall()
    return _by_status(rows)


def _by_status(rows: list[tuple[str, str, str | None, str | None, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for status, *_, count in rows:
        totals[status] = totals.get(status, 0) + count
    return totals


def pyspark(out: Path, files: list[str]) -> dict[str, int]:
    """The job in plain PySpark, tuned as the project tunes its own sessions."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from taxi_duration.engines.spark import get_spark

    spark = get_spark("local[*]", "4g")
    zones = spark.createDataFrame(zone_rows(), "zone INT, borough STRING, lon DOUBLE, lat DOUBLE")
    frames = []
    for path in files:
        frames.append(
            spark.read.parquet(path).select(
                F.col("lpep_pickup_datetime").alias("pickup_datetime"),
                F.col("lpep_dropoff_datetime").alias("dropoff_datetime"),
                F.col("PULocationID").cast("int").alias("pu_location_id"),
                F.col("DOLocationID").cast("int").alias("do_location_id"),
                F.col("passenger_count").cast("int").alias("passenger_count"),
                F.col("trip_distance").cast("double").alias("trip_distance"),
                F.col("VendorID").cast("int").alias("vendor_id"),
                F.col("RatecodeID").cast("int").alias("ratecode_id"),
                F.col("payment_type").cast("int").alias("payment_type"),
                F.col("fare_amount").cast("double").alias("fare_amount"),
                *(F.lit(None).cast("double").alias(c) for c in COORDINATES),
                F.lit("green").alias("service"),
                F.lit(Path(path).name).alias("source_file"),
                F.lit(source_month(path)).alias("source_month"),
            )
        )
    trips = frames[0]
    for frame in frames[1:]:
        trips = trips.unionByName(frame)
    pickup = F.col("pickup_datetime")
    no_passengers = F.col("passenger_count").isNull() | (F.col("passenger_count") == 0)
    flagged = (
        trips.withColumn("dur_s", F.expr("timestampdiff(SECOND, pickup_datetime, dropoff_datetime)"))
        .withColumn("copy_no", F.row_number().over(Window.partitionBy(*DUPLICATE_KEY).orderBy(pickup)))
        .withColumn("repairs", F.when(no_passengers, F.lit("passenger_count_defaulted")))
        .withColumn("passenger_count", F.when(no_passengers, F.lit(1)).otherwise(F.col("passenger_count")))
        .withColumn("reasons", F.expr(f"nullif({reasons_sql()}, '')"))
    )
    pz, dz = (
        zones.select(
            F.col("zone").alias(f"{end}_location_id"),
            *(F.col(c).alias(f"{end}_{c}") for c in ("borough", "lon", "lat")),
        )
        for end in ("pu", "do")
    )
    placed = (
        flagged.join(F.broadcast(pz), "pu_location_id", "left")
        .join(F.broadcast(dz), "do_location_id", "left")
        .withColumns({name: F.expr(sql) for name, sql in OFFSETS_SQL.items()})
    )
    weekday = F.expr("(dayofweek(pickup_datetime) + 5) % 7 + 1")
    day_key = F.year(pickup) * 10000 + F.month(pickup) * 100 + F.dayofmonth(pickup)
    pu_borough = F.coalesce(F.col("pu_borough"), F.lit(UNKNOWN))
    do_borough = F.coalesce(F.col("do_borough"), F.lit(UNKNOWN))
    result = placed.select(
        *KEPT[:-1],
        (F.col("dur_s") / 60.0).alias("duration_min"),
        F.hour(pickup).alias("pickup_hour"),
        weekday.alias("pickup_weekday"),
        (weekday >= 6).cast("int").alias("is_weekend"),
        F.month(pickup).alias("pickup_month"),
        day_key.isin(list(holiday_keys())).cast("int").alias("is_holiday"),
        ((weekday - 1) * 24 + F.hour(pickup)).alias("hour_of_week"),
        "pu_location_id",
        "do_location_id",
        F.concat(F.col("pu_location_id").cast("string"), F.lit("-"), F.col("do_location_id").cast("string")).alias(
            "zone_pair"
        ),
        pu_borough.alias("pu_borough"),
        do_borough.alias("do_borough"),
        F.concat(pu_borough, F.lit("-"), do_borough).alias("borough_pair"),
        F.col("pu_location_id").isin(list(AIRPORT_ZONES)).cast("int").alias("pu_airport"),
        F.col("do_location_id").isin(list(AIRPORT_ZONES)).cast("int").alias("do_airport"),
        *(
            F.when(F.col("east_mi").isNull(), F.lit(NO_POINT)).otherwise(F.expr(sql)).alias(name)
            for name, sql in GEOMETRY_SQL.items()
        ),
        "passenger_count",
        F.coalesce(F.col("vendor_id"), F.lit(0)).alias("vendor_id"),
        "trip_distance",
        F.when(F.col("reasons").isNull(), "clean").otherwise("quarantine").alias("_status"),
    )
    result.write.mode("errorifexists").partitionBy("_status").parquet(str(out))
    counts = spark.read.parquet(str(out)).groupBy("_status", "source_file", "reasons", "repairs").count().collect()
    return _by_status([tuple(row) for row in counts])


def polars(out: Path, files: list[str]) -> dict[str, int]:
    """The job as one Polars lazy query: a scan per file, expressions, one streaming sink split by status."""
    import polars as pl

    rows = zone_rows()
    zones = pl.LazyFrame(
        {name: [row[i] for row in rows] for i, name in enumerate(("zone", "borough", "lon", "lat"))},
        schema={"zone": pl.Int32, "borough": pl.String, "lon": pl.Float64, "lat": pl.Float64},
    )
    trips = pl.concat(
        [
            pl.scan_parquet(path).select(
                pl.col("lpep_pickup_datetime").alias("pickup_datetime"),
                pl.col("lpep_dropoff_datetime").alias("dropoff_datetime"),
                pl.col("PULocationID").cast(pl.Int32).alias("pu_location_id"),
                pl.col("DOLocationID").cast(pl.Int32).alias("do_location_id"),
                pl.col("passenger_count").cast(pl.Int32),
                pl.col("trip_distance").cast(pl.Float64),
                pl.col("VendorID").cast(pl.Int32).alias("vendor_id"),
                pl.col("RatecodeID").cast(pl.Int32).alias("ratecode_id"),
                pl.col("payment_type").cast(pl.Int32),
                pl.col("fare_amount").cast(pl.Float64),
                *(pl.lit(None, pl.Float64).alias(c) for c in COORDINATES),
                pl.lit("green").alias("service"),
                pl.lit(Path(path).name).alias("source_file"),
                pl.lit(source_month(path), pl.Int32).alias("source_month"),
            )
            for path in files
        ]
    )
    pickup, passengers, distance = pl.col("pickup_datetime"), pl.col("passenger_count"), pl.col("trip_distance")
    seconds = (pl.col("dropoff_datetime") - pickup).dt.total_seconds()
    no_passengers = passengers.is_null() | (passengers == 0)
    repaired = pl.when(no_passengers).then(pl.lit(1, pl.Int32)).otherwise(passengers)
    day = pickup.dt.date()
    low, high = KNOWN_ZONES
    rules = {
        "missing_required": pl.any_horizontal(
            *(pl.col(c).is_null() for c in ("pickup_datetime", "dropoff_datetime", "pu_location_id", "do_location_id")),
            distance.is_null(),
        ),
        "dropoff_before_pickup": seconds < 0,
        "duration_too_short": seconds.is_between(0, MIN_DURATION_S, closed="left"),
        "duration_too_long": seconds > MAX_DURATION_S,
        "pickup_outside_month": pickup.dt.year() * 100 + pickup.dt.month() != pl.col("source_month"),
        "pickup_out_of_range": (day < FIRST_DAY) | (day > last_day()),
        "unknown_zone": ~pl.col("pu_location_id").is_between(low, high)
        | ~pl.col("do_location_id").is_between(low, high),
        "non_positive_distance": distance <= 0,
        "huge_distance": distance > MAX_DISTANCE_MI,
        "impossible_speed": (seconds > 0) & (distance * 3600 > MAX_SPEED_MPH * seconds),
        "bad_passenger_count": (repaired < 0) | (repaired > MAX_PASSENGERS),
        "negative_fare": pl.col("fare_amount") < 0,
        # Exact copies need no order: every copy after the first seen is a duplicate.
        "duplicate": ~pl.struct(DUPLICATE_KEY).is_first_distinct(),
    }
    joined = pl.concat_str(
        [pl.when(rule).then(pl.lit(code)) for code, rule in rules.items()], separator=",", ignore_nulls=True
    )
    flagged = trips.with_columns(
        pl.when(joined != "").then(joined).alias("reasons"),
        pl.when(no_passengers).then(pl.lit("passenger_count_defaulted")).alias("repairs"),
        (seconds / 60).alias("duration_min"),
        repaired.alias("passenger_count"),
    )
    for end in ("pu", "do"):
        flagged = flagged.join(
            zones.rename(
                {"zone": f"{end}_location_id", "borough": f"{end}_borough", "lon": f"{end}_lon", "lat": f"{end}_lat"}
            ),
            on=f"{end}_location_id",
            how="left",
        )
    pu_lon, pu_lat, do_lon, do_lat = (pl.col(c) for c in ("pu_lon", "pu_lat", "do_lon", "do_lat"))
    placed = flagged.with_columns(
        ((do_lon - pu_lon).radians() * ((pu_lat + do_lat) / 2).radians().cos() * EARTH_RADIUS_MI).alias("east_mi"),
        ((do_lat - pu_lat).radians() * EARTH_RADIUS_MI).alias("north_mi"),
    )
    east, north = pl.col("east_mi"), pl.col("north_mi")
    a = ((do_lat - pu_lat).radians() / 2).sin() ** 2 + pu_lat.radians().cos() * do_lat.radians().cos() * (
        (do_lon - pu_lon).radians() / 2
    ).sin() ** 2
    bearing = pl.arctan2(east, north).degrees()
    geometry = {
        "haversine_mi": 2 * EARTH_RADIUS_MI * a.sqrt().arcsin(),
        "manhattan_mi": (east * SIN_GRID + north * COS_GRID).abs() + (east * COS_GRID - north * SIN_GRID).abs(),
        "bearing_deg": pl.when(bearing < 0).then(bearing + 360).otherwise(bearing),
    }
    weekday = pickup.dt.weekday().cast(pl.Int32)
    hour = pickup.dt.hour().cast(pl.Int32)
    pu_borough = pl.col("pu_borough").fill_null(UNKNOWN)
    do_borough = pl.col("do_borough").fill_null(UNKNOWN)
    holidays = [date(k // 10_000, k // 100 % 100, k % 100) for k in holiday_keys()]
    result = placed.select(
        *KEPT,
        hour.alias("pickup_hour"),
        weekday.alias("pickup_weekday"),
        (weekday >= 6).cast(pl.Int32).alias("is_weekend"),
        pickup.dt.month().cast(pl.Int32).alias("pickup_month"),
        day.is_in(holidays).cast(pl.Int32).alias("is_holiday"),
        ((weekday - 1) * 24 + hour).alias("hour_of_week"),
        "pu_location_id",
        "do_location_id",
        pl.concat_str([pl.col("pu_location_id"), pl.col("do_location_id")], separator="-").alias("zone_pair"),
        pu_borough,
        do_borough,
        pl.concat_str([pu_borough, do_borough], separator="-").alias("borough_pair"),
        pl.col("pu_location_id").is_in(AIRPORT_ZONES).cast(pl.Int32).alias("pu_airport"),
        pl.col("do_location_id").is_in(AIRPORT_ZONES).cast(pl.Int32).alias("do_airport"),
        *(pl.when(east.is_null()).then(NO_POINT).otherwise(expr).alias(name) for name, expr in geometry.items()),
        "passenger_count",
        pl.col("vendor_id").fill_null(0),
        "trip_distance",
        pl.when(pl.col("reasons").is_null()).then(pl.lit("clean")).otherwise(pl.lit("quarantine")).alias("_status"),
    )
    result.sink_parquet(pl.PartitionBy(out, key="_status", include_key=False), maintain_order=False, mkdir=True)
    counts = (
        pl.scan_parquet(out / "**" / "*.parquet", hive_partitioning=True)
        .group_by("_status", "source_file", "reasons", "repairs")
        .len()
        .collect()
    )
    return _by_status(counts.rows())


def main() -> None:
    """Entry point: `python -m taxi_duration.ops.bench.reference {duckdb-sql|pyspark|polars} OUT FILE...`."""
    which, out, *files = sys.argv[1:]
    job = {"duckdb-sql": duckdb_sql, "pyspark": pyspark, "polars": polars}[which]
    print(json.dumps(job(Path(out), files)))


if __name__ == "__main__":
    main()
