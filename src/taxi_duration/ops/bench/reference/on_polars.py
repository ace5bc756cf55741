"""The Polars reference: one lazy query, a scan per file, the rules and features as expressions, one streaming
sink split by status, then the counts read back from it."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from taxi_duration.features.definitions import EARTH_RADIUS_MI, NO_POINT, holiday_keys
from taxi_duration.geo.zones import AIRPORT_ZONES
from taxi_duration.ingest.validation import (
    FIRST_DAY,
    KNOWN_ZONES,
    MAX_DISTANCE_MI,
    MAX_DURATION_S,
    MAX_PASSENGERS,
    MAX_SPEED_MPH,
    MIN_DURATION_S,
)
from taxi_duration.ops.bench.reference.spec import (
    COORDINATES,
    COS_GRID,
    DUPLICATE_KEY,
    KEPT,
    SIN_GRID,
    UNKNOWN,
    by_status,
    last_day,
    source_month,
    zone_rows,
)

if TYPE_CHECKING:  # Polars loads only when the reference runs
    import polars as pl


def polars(out: Path, files: list[str]) -> dict[str, int]:
    """The job as one Polars lazy query: a scan per file, expressions, one streaming sink split by status."""
    import polars as pl

    result = _features(_place(_flag(_scan(files))))
    result.sink_parquet(pl.PartitionBy(out, key="_status", include_key=False), maintain_order=False, mkdir=True)
    counts = (
        pl.scan_parquet(out / "**" / "*.parquet", hive_partitioning=True)
        .group_by("_status", "source_file", "reasons", "repairs")
        .len()
        .collect()
    )
    return by_status(counts.rows())


def _scan(files: list[str]) -> pl.LazyFrame:
    """The trips of every file under the project's column names, with the file's name and month."""
    import polars as pl

    return pl.concat(
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


def _rules(seconds: pl.Expr, repaired: pl.Expr) -> dict[str, pl.Expr]:
    """Every rule as a true-when-broken expression, by reason, over the trip's `seconds` and `repaired` passengers."""
    import polars as pl

    pickup, distance, day = pl.col("pickup_datetime"), pl.col("trip_distance"), pl.col("pickup_datetime").dt.date()
    low, high = KNOWN_ZONES
    return {
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


def _flag(trips: pl.LazyFrame) -> pl.LazyFrame:
    """The reasons (comma-separated, null when clean), the passenger repair and the target."""
    import polars as pl

    passengers = pl.col("passenger_count")
    seconds = (pl.col("dropoff_datetime") - pl.col("pickup_datetime")).dt.total_seconds()
    no_passengers = passengers.is_null() | (passengers == 0)
    repaired = pl.when(no_passengers).then(pl.lit(1, pl.Int32)).otherwise(passengers)
    joined = pl.concat_str(
        [pl.when(rule).then(pl.lit(code)) for code, rule in _rules(seconds, repaired).items()],
        separator=",",
        ignore_nulls=True,
    )
    return trips.with_columns(
        pl.when(joined != "").then(joined).alias("reasons"),
        pl.when(no_passengers).then(pl.lit("passenger_count_defaulted")).alias("repairs"),
        (seconds / 60).alias("duration_min"),
        repaired.alias("passenger_count"),
    )


def _place(flagged: pl.LazyFrame) -> pl.LazyFrame:
    """Each end's borough and centroid, and the dropoff's offset in miles east and north."""
    import polars as pl

    rows = zone_rows()
    zones = pl.LazyFrame(
        {name: [row[i] for row in rows] for i, name in enumerate(("zone", "borough", "lon", "lat"))},
        schema={"zone": pl.Int32, "borough": pl.String, "lon": pl.Float64, "lat": pl.Float64},
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
    return flagged.with_columns(
        ((do_lon - pu_lon).radians() * ((pu_lat + do_lat) / 2).radians().cos() * EARTH_RADIUS_MI).alias("east_mi"),
        ((do_lat - pu_lat).radians() * EARTH_RADIUS_MI).alias("north_mi"),
    )


def _geometry() -> dict[str, pl.Expr]:
    """The three geometry features over the end points and the dropoff's offset."""
    import polars as pl

    pu_lon, pu_lat, do_lon, do_lat = (pl.col(c) for c in ("pu_lon", "pu_lat", "do_lon", "do_lat"))
    east, north = pl.col("east_mi"), pl.col("north_mi")
    a = ((do_lat - pu_lat).radians() / 2).sin() ** 2 + pu_lat.radians().cos() * do_lat.radians().cos() * (
        (do_lon - pu_lon).radians() / 2
    ).sin() ** 2
    bearing = pl.arctan2(east, north).degrees()
    return {
        "haversine_mi": 2 * EARTH_RADIUS_MI * a.sqrt().arcsin(),
        "manhattan_mi": (east * SIN_GRID + north * COS_GRID).abs() + (east * COS_GRID - north * SIN_GRID).abs(),
        "bearing_deg": pl.when(bearing < 0).then(bearing + 360).otherwise(bearing),
    }


def _features(placed: pl.LazyFrame) -> pl.LazyFrame:
    """The output's columns: the kept ones, every feature and the status."""
    import polars as pl

    pickup = pl.col("pickup_datetime")
    weekday = pickup.dt.weekday().cast(pl.Int32)
    hour = pickup.dt.hour().cast(pl.Int32)
    pu_borough = pl.col("pu_borough").fill_null(UNKNOWN)
    do_borough = pl.col("do_borough").fill_null(UNKNOWN)
    holidays = [date(k // 10_000, k // 100 % 100, k % 100) for k in holiday_keys()]
    return placed.select(
        *KEPT,
        hour.alias("pickup_hour"),
        weekday.alias("pickup_weekday"),
        (weekday >= 6).cast(pl.Int32).alias("is_weekend"),
        pickup.dt.month().cast(pl.Int32).alias("pickup_month"),
        pickup.dt.date().is_in(holidays).cast(pl.Int32).alias("is_holiday"),
        ((weekday - 1) * 24 + hour).alias("hour_of_week"),
        "pu_location_id",
        "do_location_id",
        pl.concat_str([pl.col("pu_location_id"), pl.col("do_location_id")], separator="-").alias("zone_pair"),
        pu_borough,
        do_borough,
        pl.concat_str([pu_borough, do_borough], separator="-").alias("borough_pair"),
        pl.col("pu_location_id").is_in(AIRPORT_ZONES).cast(pl.Int32).alias("pu_airport"),
        pl.col("do_location_id").is_in(AIRPORT_ZONES).cast(pl.Int32).alias("do_airport"),
        *(
            pl.when(pl.col("east_mi").is_null()).then(NO_POINT).otherwise(expr).alias(name)
            for name, expr in _geometry().items()
        ),
        "passenger_count",
        pl.col("vendor_id").fill_null(0),
        "trip_distance",
        pl.when(pl.col("reasons").is_null()).then(pl.lit("clean")).otherwise(pl.lit("quarantine")).alias("_status"),
    )
