"""The references our engines are measured against: the prepare job written by hand, as a user would.

`duckdb-sql` is one DuckDB SQL statement; `pyspark` is plain PySpark DataFrame code, hand-tuned. Both do
the work of `taxi-duration validate --features` on TLC green Parquet files: normalize, repair, apply every
rule, find duplicates, compute the features and the target, write clean and quarantined rows in one
partitioned write, and count rows by file, reasons and repairs (what the quality report is made of).
They are written without the package's abstractions (only its constants, zones and holidays, and the
one Spark session builder, so both Spark runs share their settings), so they show what those cost.

Run: `python -m taxi_duration.bench.reference {duckdb-sql|pyspark} OUT FILE...`; prints the counts as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from taxi_duration.features import holiday_keys
from taxi_duration.zones import AIRPORT_ZONES, boroughs

DUPLICATE_KEY = (
    "pickup_datetime, dropoff_datetime, pu_location_id, do_location_id, passenger_count, trip_distance, "
    "vendor_id, ratecode_id, payment_type, fare_amount"
)
REASONS_SQL = """concat_ws(',',
    CASE WHEN pickup_datetime IS NULL OR dropoff_datetime IS NULL OR pu_location_id IS NULL
              OR do_location_id IS NULL OR trip_distance IS NULL THEN 'missing_required' END,
    CASE WHEN dur_s < 0 THEN 'dropoff_before_pickup' END,
    CASE WHEN dur_s >= 0 AND dur_s < 60 THEN 'duration_too_short' END,
    CASE WHEN dur_s > 18000 THEN 'duration_too_long' END,
    CASE WHEN year(pickup_datetime) * 100 + month(pickup_datetime) <> source_month THEN 'pickup_outside_month' END,
    CASE WHEN pu_location_id NOT BETWEEN 1 AND 263 OR do_location_id NOT BETWEEN 1 AND 263 THEN 'unknown_zone' END,
    CASE WHEN trip_distance <= 0 THEN 'non_positive_distance' END,
    CASE WHEN trip_distance > 100 THEN 'huge_distance' END,
    CASE WHEN dur_s > 0 AND trip_distance * 3600 > 80 * dur_s THEN 'impossible_speed' END,
    CASE WHEN passenger_count < 0 OR passenger_count > 9 THEN 'bad_passenger_count' END,
    CASE WHEN fare_amount < 0 THEN 'negative_fare' END,
    CASE WHEN copy_no > 1 THEN 'duplicate' END)"""


def duckdb_sql(out: Path, files: list[str]) -> dict[str, int]:
    """The job as one DuckDB statement (plus the count)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    zones = ", ".join(f"({z}, '{b}')" for z, b in boroughs().items())
    holidays = ", ".join(map(str, holiday_keys()))
    airports = ", ".join(map(str, AIRPORT_ZONES))
    con.execute(f"""
    COPY (
      WITH zones(zone, borough) AS (VALUES {zones}),
      trips AS (
        SELECT lpep_pickup_datetime AS pickup_datetime, lpep_dropoff_datetime AS dropoff_datetime,
               PULocationID::INT AS pu_location_id, DOLocationID::INT AS do_location_id,
               passenger_count::INT AS passenger_count, trip_distance::DOUBLE AS trip_distance,
               VendorID::INT AS vendor_id, RatecodeID::INT AS ratecode_id, payment_type::INT AS payment_type,
               fare_amount::DOUBLE AS fare_amount, 'green' AS service, parse_filename(filename) AS source_file,
               replace(regexp_extract(filename, '\\d{{4}}-\\d{{2}}'), '-', '')::INT AS source_month
        FROM read_parquet({files!r}, filename = true)),
      flagged AS (
        SELECT * REPLACE (CASE WHEN passenger_count IS NULL OR passenger_count = 0 THEN 1
                               ELSE passenger_count END AS passenger_count),
               passenger_count AS raw_passengers,
               date_diff('second', pickup_datetime, dropoff_datetime) AS dur_s,
               row_number() OVER (PARTITION BY {DUPLICATE_KEY}) AS copy_no
        FROM trips),
      reasoned AS (
        SELECT *, nullif({REASONS_SQL}, '') AS reasons,
               CASE WHEN raw_passengers IS NULL OR raw_passengers = 0 THEN 'passenger_count_defaulted' END AS repairs
        FROM flagged)
      SELECT r.* EXCLUDE (dur_s, copy_no, raw_passengers),
             hour(pickup_datetime) AS pickup_hour, isodow(pickup_datetime) AS pickup_weekday,
             (isodow(pickup_datetime) >= 6)::INT AS is_weekend, month(pickup_datetime) AS pickup_month,
             ((year(pickup_datetime) * 10000 + month(pickup_datetime) * 100 + day(pickup_datetime))
                IN ({holidays}))::INT AS is_holiday,
             (isodow(pickup_datetime) - 1) * 24 + hour(pickup_datetime) AS hour_of_week,
             pu_location_id || '-' || do_location_id AS zone_pair,
             coalesce(pz.borough, 'Unknown') AS pu_borough, coalesce(dz.borough, 'Unknown') AS do_borough,
             coalesce(pz.borough, 'Unknown') || '-' || coalesce(dz.borough, 'Unknown') AS borough_pair,
             (pu_location_id IN ({airports}))::INT AS pu_airport, (do_location_id IN ({airports}))::INT AS do_airport,
             coalesce(vendor_id, 0) AS vendor_feature, dur_s / 60.0 AS duration_min,
             CASE WHEN reasons IS NULL THEN 'clean' ELSE 'quarantine' END AS _status
      FROM reasoned r
      LEFT JOIN zones pz ON pz.zone = r.pu_location_id
      LEFT JOIN zones dz ON dz.zone = r.do_location_id
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

    from taxi_duration.spark import get_spark

    spark = get_spark("local[*]", "4g")
    zones = spark.createDataFrame(list(boroughs().items()), "zone INT, borough STRING")
    frames = []
    for path in files:
        month = Path(path).stem[-7:].replace("-", "")
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
                F.lit("green").alias("service"),
                F.lit(Path(path).name).alias("source_file"),
                F.lit(int(month)).alias("source_month"),
            )
        )
    trips = frames[0]
    for frame in frames[1:]:
        trips = trips.unionByName(frame)
    duplicate_key = [c.strip() for c in DUPLICATE_KEY.split(",")]
    pickup = F.col("pickup_datetime")
    no_passengers = F.col("passenger_count").isNull() | (F.col("passenger_count") == 0)
    flagged = (
        trips.withColumn("dur_s", F.expr("timestampdiff(SECOND, pickup_datetime, dropoff_datetime)"))
        .withColumn("copy_no", F.row_number().over(Window.partitionBy(*duplicate_key).orderBy(pickup)))
        .withColumn("repairs", F.when(no_passengers, F.lit("passenger_count_defaulted")))
        .withColumn("passenger_count", F.when(no_passengers, F.lit(1)).otherwise(F.col("passenger_count")))
        .withColumn("reasons", F.expr(f"nullif({REASONS_SQL}, '')"))
    )
    weekday = F.expr("(dayofweek(pickup_datetime) + 5) % 7 + 1")
    day_key = F.year(pickup) * 10000 + F.month(pickup) * 100 + F.dayofmonth(pickup)
    pz, dz = zones.alias("pz"), zones.alias("dz")
    pu_borough, do_borough = (
        F.coalesce(F.col("pz.borough"), F.lit("Unknown")),
        F.coalesce(F.col("dz.borough"), F.lit("Unknown")),
    )
    result = (
        flagged.join(F.broadcast(pz), F.col("pu_location_id") == F.col("pz.zone"), "left")
        .join(F.broadcast(dz), F.col("do_location_id") == F.col("dz.zone"), "left")
        .select(
            *[F.col(c) for c in trips.columns],
            "reasons",
            "repairs",
            F.hour(pickup).alias("pickup_hour"),
            weekday.alias("pickup_weekday"),
            (weekday >= 6).cast("int").alias("is_weekend"),
            F.month(pickup).alias("pickup_month"),
            day_key.isin(list(holiday_keys())).cast("int").alias("is_holiday"),
            ((weekday - 1) * 24 + F.hour(pickup)).alias("hour_of_week"),
            F.concat_ws("-", "pu_location_id", "do_location_id").alias("zone_pair"),
            pu_borough.alias("pu_borough"),
            do_borough.alias("do_borough"),
            F.concat_ws("-", pu_borough, do_borough).alias("borough_pair"),
            F.col("pu_location_id").isin(list(AIRPORT_ZONES)).cast("int").alias("pu_airport"),
            F.col("do_location_id").isin(list(AIRPORT_ZONES)).cast("int").alias("do_airport"),
            F.coalesce(F.col("vendor_id"), F.lit(0)).alias("vendor_feature"),
            (F.col("dur_s") / 60.0).alias("duration_min"),
            F.when(F.col("reasons").isNull(), "clean").otherwise("quarantine").alias("_status"),
        )
    )
    result.write.mode("errorifexists").partitionBy("_status").parquet(str(out))
    counts = spark.read.parquet(str(out)).groupBy("_status", "source_file", "reasons", "repairs").count().collect()
    return _by_status([tuple(row) for row in counts])


def main() -> None:
    """Entry point: `python -m taxi_duration.bench.reference {duckdb-sql|pyspark} OUT FILE...`."""
    which, out, *files = sys.argv[1:]
    job = {"duckdb-sql": duckdb_sql, "pyspark": pyspark}[which]
    print(json.dumps(job(Path(out), files)))


if __name__ == "__main__":
    main()
