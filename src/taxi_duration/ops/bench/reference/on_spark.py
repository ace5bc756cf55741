"""The PySpark reference: the job in plain DataFrame code, read, flag, place, featurize, then one partitioned
write and the counts read back from it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from taxi_duration.features.definitions import NO_POINT, holiday_keys
from taxi_duration.geo.zones import AIRPORT_ZONES
from taxi_duration.ops.bench.reference.spec import (
    COORDINATES,
    DUPLICATE_KEY,
    GEOMETRY_SQL,
    KEPT,
    OFFSETS_SQL,
    UNKNOWN,
    by_status,
    reasons_sql,
    source_month,
    zone_rows,
)

if TYPE_CHECKING:  # PySpark loads only when the reference runs
    from pyspark.sql import DataFrame, SparkSession


def pyspark(out: Path, files: list[str]) -> dict[str, int]:
    """The job in plain PySpark, tuned as the project tunes its own sessions."""
    from taxi_duration.engines.spark import get_spark

    spark = get_spark("local[*]", "4g")
    result = _features(_place(spark, _flag(_read(spark, files))))
    result.write.mode("errorifexists").partitionBy("_status").parquet(str(out))
    counts = spark.read.parquet(str(out)).groupBy("_status", "source_file", "reasons", "repairs").count().collect()
    return by_status([tuple(row) for row in counts])


def _read(spark: SparkSession, files: list[str]) -> DataFrame:
    """The trips of every file under the project's column names, with the file's name and month."""
    from pyspark.sql import functions as F

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
    return trips


def _flag(trips: DataFrame) -> DataFrame:
    """The passenger repair and every rule's reason (duplicates numbered within their key)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    no_passengers = F.col("passenger_count").isNull() | (F.col("passenger_count") == 0)
    return (
        trips.withColumn("dur_s", F.expr("timestampdiff(SECOND, pickup_datetime, dropoff_datetime)"))
        .withColumn(
            "copy_no", F.row_number().over(Window.partitionBy(*DUPLICATE_KEY).orderBy(F.col("pickup_datetime")))
        )
        .withColumn("repairs", F.when(no_passengers, F.lit("passenger_count_defaulted")))
        .withColumn("passenger_count", F.when(no_passengers, F.lit(1)).otherwise(F.col("passenger_count")))
        .withColumn("reasons", F.expr(f"nullif({reasons_sql()}, '')"))
    )


def _place(spark: SparkSession, flagged: DataFrame) -> DataFrame:
    """Each end's borough and centroid (broadcast joins), and the dropoff's offset in miles east and north."""
    from pyspark.sql import functions as F

    zones = spark.createDataFrame(zone_rows(), "zone INT, borough STRING, lon DOUBLE, lat DOUBLE")
    pz, dz = (
        zones.select(
            F.col("zone").alias(f"{end}_location_id"),
            *(F.col(c).alias(f"{end}_{c}") for c in ("borough", "lon", "lat")),
        )
        for end in ("pu", "do")
    )
    return (
        flagged.join(F.broadcast(pz), "pu_location_id", "left")
        .join(F.broadcast(dz), "do_location_id", "left")
        .withColumns({name: F.expr(sql) for name, sql in OFFSETS_SQL.items()})
    )


def _features(placed: DataFrame) -> DataFrame:
    """The output's columns: the kept ones, the target, every feature and the status."""
    from pyspark.sql import functions as F

    pickup = F.col("pickup_datetime")
    weekday = F.expr("(dayofweek(pickup_datetime) + 5) % 7 + 1")
    day_key = F.year(pickup) * 10000 + F.month(pickup) * 100 + F.dayofmonth(pickup)
    pu_borough = F.coalesce(F.col("pu_borough"), F.lit(UNKNOWN))
    do_borough = F.coalesce(F.col("do_borough"), F.lit(UNKNOWN))
    return placed.select(
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
