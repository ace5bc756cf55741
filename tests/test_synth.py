"""Synthetic TLC files: schema, exact row counts, reproducibility, dirt on demand, realism and drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import Month, parse_months
from taxi_duration.geo.calibration import load_profile
from taxi_duration.ingest.synth import DirtyShares, generate, parse_rows

I32, I64, F64, TS = pa.int32(), pa.int64(), pa.float64(), pa.timestamp("us")
# Written out by hand from the TLC data dictionaries (2023 "era B" types), not taken from the module.
GREEN = {
    "VendorID": I32,
    "lpep_pickup_datetime": TS,
    "lpep_dropoff_datetime": TS,
    "store_and_fwd_flag": pa.large_string(),
    "RatecodeID": I64,
    "PULocationID": I32,
    "DOLocationID": I32,
    "passenger_count": I64,
    "trip_distance": F64,
    "fare_amount": F64,
    "extra": F64,
    "mta_tax": F64,
    "tip_amount": F64,
    "tolls_amount": F64,
    "ehail_fee": F64,
    "improvement_surcharge": F64,
    "total_amount": F64,
    "payment_type": I64,
    "trip_type": I64,
    "congestion_surcharge": F64,
}
YELLOW = {
    "VendorID": I32,
    "tpep_pickup_datetime": TS,
    "tpep_dropoff_datetime": TS,
    "passenger_count": I64,
    "trip_distance": F64,
    "RatecodeID": I64,
    "store_and_fwd_flag": pa.large_string(),
    "PULocationID": I32,
    "DOLocationID": I32,
    "payment_type": I64,
    "fare_amount": F64,
    "extra": F64,
    "mta_tax": F64,
    "tip_amount": F64,
    "tolls_amount": F64,
    "improvement_surcharge": F64,
    "total_amount": F64,
    "congestion_surcharge": F64,
    "Airport_fee": F64,
}
JAN = Month(2023, 1)


def _frame(paths: list[Path]) -> pd.DataFrame:
    """All files as one frame with green names, plus duration (s), speed (mph) and the file's month."""
    frames = []
    for path in paths:
        df = pq.read_table(path).to_pandas()
        df.columns = [c.replace("tpep_", "lpep_") for c in df.columns]
        df["file_month"] = path.stem.split("_")[-1]
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["seconds"] = (df["lpep_dropoff_datetime"] - df["lpep_pickup_datetime"]).dt.total_seconds()
    df["mph"] = df["trip_distance"] / (df["seconds"] / 3600)
    return df


@pytest.mark.parametrize(("service", "expected"), [("green", GREEN), ("yellow", YELLOW)])
def test_one_file_per_month_with_tlc_schema_and_exact_rows(tmp_path: Path, service: str, expected: dict) -> None:
    paths = generate(1001, parse_months("2023-01..2023-03"), tmp_path, service=service, chunk_rows=100)

    assert [p.name for p in paths] == [f"{service}_tripdata_2023-0{i}.parquet" for i in (1, 2, 3)]
    assert sorted(tmp_path.iterdir()) == paths  # no temporary file left behind
    assert [pq.read_metadata(p).num_rows for p in paths] == [334, 334, 333]
    assert pq.read_metadata(paths[0]).num_row_groups == 4  # written in chunks of 100
    file_schema = pq.read_schema(paths[0])
    assert file_schema.names == list(expected)
    assert {f.name: f.type for f in file_schema} == expected


def test_fewer_rows_than_months_still_writes_every_month(tmp_path: Path) -> None:
    paths = generate(2, parse_months("2023-01..2023-03"), tmp_path)
    assert [pq.read_metadata(p).num_rows for p in paths] == [1, 1, 0]


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    months = parse_months("2023-01..2023-02")
    a = generate(3000, months, tmp_path / "a", seed=7, chunk_rows=1000)
    b = generate(3000, months, tmp_path / "b", seed=7, chunk_rows=1000)
    c = generate(3000, months, tmp_path / "c", seed=8, chunk_rows=1000)

    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert not pq.read_table(a[0]).equals(pq.read_table(c[0]))
    assert (pq.read_table(a[0])["PULocationID"].to_numpy() != pq.read_table(c[0])["PULocationID"].to_numpy()).any()


def test_clean_data_has_no_dirt(tmp_path: Path) -> None:
    df = _frame(generate(20_000, parse_months("2023-02..2023-03"), tmp_path, dirty=DirtyShares.clean()))

    assert df.drop(columns="ehail_fee").notna().all().all()
    assert df["seconds"].between(1, 5 * 3600).all()
    assert df["mph"].max() <= 80
    assert df["PULocationID"].between(1, 263).all()
    assert df["DOLocationID"].between(1, 263).all()
    assert (df["trip_distance"] > 0).all()
    assert (df["trip_distance"] <= 100).all()
    assert (df["lpep_pickup_datetime"].dt.strftime("%Y-%m") == df["file_month"]).all()
    assert df["passenger_count"].between(1, 9).all()
    assert (df["fare_amount"] >= 0).all()
    assert not df.drop(columns="file_month").duplicated().any()


def test_each_kind_of_dirt_appears_in_proportion(tmp_path: Path) -> None:
    n, factor = 50_000, 5
    dirty = DirtyShares().scaled(factor)
    df = _frame(generate(n, [JAN], tmp_path, dirty=dirty))
    ok_distance = df["trip_distance"] <= 100
    block = ["passenger_count", "RatecodeID", "payment_type", "trip_type", "congestion_surcharge", "store_and_fwd_flag"]
    found = {
        "dropoff_before_pickup": df["seconds"] < 0,
        "under_a_minute": df["seconds"].between(0, 59),
        "too_long": df["seconds"] > 5 * 3600,
        "outside_month": df["lpep_pickup_datetime"].dt.strftime("%Y-%m") != "2023-01",
        "unknown_zone": df["PULocationID"].isin([264, 265]) | df["DOLocationID"].isin([264, 265]),
        "zero_distance": df["trip_distance"] == 0,
        "huge_distance": df["trip_distance"] > 100,
        "impossible_speed": ok_distance & (df["seconds"] >= 60) & (df["mph"] > 80),
        "bad_passengers": (df["passenger_count"] < 0) | (df["passenger_count"] > 9),
        "zero_passengers": df["passenger_count"] == 0,
        "null_block": df[block].isna().all(axis=1),
        "null_required": df[["PULocationID", "trip_distance", "lpep_dropoff_datetime"]].isna().any(axis=1),
        "negative_fare": df["fare_amount"] < 0,
        "duplicate": df.drop(columns="file_month").duplicated(),
    }
    for kind, mask in found.items():
        expected = n * getattr(dirty, kind)
        assert 0.6 * expected <= mask.sum() <= 1.5 * expected, (kind, int(mask.sum()), expected)
    # The partial null block (nothing but the block) must not leak into required fields.
    assert df.loc[found["null_block"], ["PULocationID", "trip_distance"]].notna().all().all()


def test_dirty_shares_validation() -> None:
    assert sum(vars(DirtyShares.clean()).values()) == 0
    assert DirtyShares().scaled(2).zero_distance == pytest.approx(0.08)
    with pytest.raises(UsageError):
        DirtyShares().scaled(10)  # shares would sum past 1
    with pytest.raises(UsageError):
        DirtyShares(zero_distance=-0.1)


def test_trips_look_real(tmp_path: Path) -> None:
    df = _frame(generate(50_000, [JAN], tmp_path, dirty=DirtyShares.clean()))
    weekday = df[df["lpep_pickup_datetime"].dt.dayofweek < 5]
    hour = weekday["lpep_pickup_datetime"].dt.hour

    assert 8 * 60 <= df["seconds"].median() <= 20 * 60
    assert weekday.loc[hour == 8, "mph"].median() < 0.85 * weekday.loc[hour == 3, "mph"].median()
    zones = set(df["PULocationID"]) | set(df["DOLocationID"])
    assert {132, 138} <= zones  # JFK and LaGuardia
    airport = df["PULocationID"].isin([1, 132, 138]) | df["DOLocationID"].isin([1, 132, 138])
    assert 0.005 < airport.mean() < 0.05
    assert (df["passenger_count"] == 1).mean() > 0.7
    # Longer trips take longer, and fares follow distance and time.
    assert df.loc[df["trip_distance"] > 5, "seconds"].median() > 2 * df.loc[df["trip_distance"] < 2, "seconds"].median()
    assert np.corrcoef(df["trip_distance"], df["fare_amount"])[0, 1] > 0.9


def _by_month(df: pd.DataFrame) -> pd.DataFrame:
    lat = load_profile().lat
    df = df.assign(pickup_lat=lat[df["PULocationID"].to_numpy()])
    return df.groupby("file_month").agg(mph=("mph", "median"), lat=("pickup_lat", "mean"))


def test_drift_slows_traffic_and_moves_pickups_north(tmp_path: Path) -> None:
    months = parse_months("2023-01..2023-06")
    drifted = _by_month(_frame(generate(30_000, months, tmp_path / "d", drift=0.05, dirty=DirtyShares.clean())))
    steady = _by_month(_frame(generate(30_000, months, tmp_path / "s", drift=0.0, dirty=DirtyShares.clean())))

    # Month 5 runs at 1 - 0.05 * 5 = 75% of month 0's speeds.
    assert drifted["mph"].iloc[-1] / drifted["mph"].iloc[0] == pytest.approx(0.75, abs=0.06)
    assert drifted["lat"].iloc[-1] > drifted["lat"].iloc[0] + 0.005
    assert steady["mph"].iloc[-1] / steady["mph"].iloc[0] == pytest.approx(1.0, abs=0.04)
    assert steady["lat"].iloc[-1] == pytest.approx(steady["lat"].iloc[0], abs=0.003)


def test_interrupted_month_leaves_no_file(tmp_path: Path) -> None:
    calls = []

    def stop_in_second_month(rows: int) -> None:
        calls.append(rows)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(400, parse_months("2023-01..2023-02"), tmp_path, chunk_rows=100, on_progress=stop_in_second_month)
    assert [p.name for p in tmp_path.iterdir()] == ["green_tripdata_2023-01.parquet"]
    assert calls == [100, 100, 100]


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("50M", 50_000_000),
        ("1.5k", 1_500),
        ("200000", 200_000),
        ("2B", 2_000_000_000),
        (" 7 ", 7),
        ("200_000", 200_000),
    ],
)
def test_parse_rows(text: str, rows: int) -> None:
    assert parse_rows(text) == rows


@pytest.mark.parametrize("text", ["", "abc", "0", "-5", "1.2345k", "1.5", "5x", "M", "1e6", "0.0001k", "1..2k"])
def test_parse_rows_rejects_garbage(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rows(text)


@pytest.mark.parametrize(
    "kwargs", [{"service": "fhv"}, {"seed": -1}, {"drift": -0.1}, {"chunk_rows": 0}, {"rows": -1}, {"months": []}]
)
def test_generate_rejects_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    args = {"rows": 10, "months": [JAN], "out": tmp_path} | kwargs
    with pytest.raises(UsageError):
        generate(**args)
