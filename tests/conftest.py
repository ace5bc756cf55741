"""Shared fixtures: one Spark session for the whole run, small hand-written trips, the real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_duration.config import Engine, Settings, load_settings
from taxi_duration.engines import Runtime
from taxi_duration.months import parse_months
from taxi_duration.splits import TimeSplit

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The synthetic months the training tests generate: train 2023-01, validate 2023-02, test 2023-03.
SPLIT = TimeSplit.last_two_held_out(parse_months("2023-01..2023-03"))


def store_settings(root: Path, **overrides: str) -> Settings:
    """Settings whose data and MLflow store (SQLite) live under `root`, with the quick model search."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return load_settings(data_dir=root, mlflow_tracking_uri=uri, search="quick", **overrides)


# Engines that start in milliseconds run everywhere; Spark only where marked, on the shared session.
FAST_ENGINES = [Engine.DUCKDB, Engine.PANDAS]
ALL_ENGINES = [*FAST_ENGINES, pytest.param(Engine.SPARK, marks=pytest.mark.spark)]


def green_row(**overrides: Any) -> dict[str, Any]:
    """One clean green-taxi trip in the TLC's own column names (era B types), changed by `overrides`."""
    row: dict[str, Any] = {
        "VendorID": 2,
        "lpep_pickup_datetime": datetime(2023, 1, 10, 8, 0, 0),
        "lpep_dropoff_datetime": datetime(2023, 1, 10, 8, 15, 0),
        "store_and_fwd_flag": "N",
        "RatecodeID": 1,
        "PULocationID": 74,
        "DOLocationID": 75,
        "passenger_count": 1,
        "trip_distance": 2.5,
        "fare_amount": 14.2,
        "payment_type": 1,
        "trip_type": 1,
    }
    row.update(overrides)
    return row


GREEN_TYPES = {
    "VendorID": pa.int32(),
    "lpep_pickup_datetime": pa.timestamp("us"),
    "lpep_dropoff_datetime": pa.timestamp("us"),
    "store_and_fwd_flag": pa.large_string(),
    "RatecodeID": pa.int64(),
    "PULocationID": pa.int32(),
    "DOLocationID": pa.int32(),
    "passenger_count": pa.int64(),
    "trip_distance": pa.float64(),
    "fare_amount": pa.float64(),
    "payment_type": pa.int64(),
    "trip_type": pa.int64(),
}


def write_parquet(path: Path, rows: list[dict[str, Any]], types: dict[str, pa.DataType] | None = None) -> Path:
    """Write rows as a Parquet file, with explicit Arrow types where given."""
    types = GREEN_TYPES if types is None else types
    columns = list(rows[0])
    arrays = {c: pa.array([r.get(c) for r in rows], type=types.get(c)) for c in columns}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), path)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write rows as JSON lines, timestamps in ISO form as events carry them."""
    path.write_text("".join(json.dumps(r, default=lambda v: v.isoformat()) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The one Spark session of the test run (local[2], small memory)."""
    from taxi_duration.spark import get_spark

    session = get_spark("local[2]", "1g", app_name="taxi-duration-tests")
    yield session
    session.stop()


@pytest.fixture
def runtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """An open engine; parametrize with `indirect=True` over FAST_ENGINES or ALL_ENGINES."""
    engine: Engine = request.param
    if engine is Engine.SPARK:
        request.getfixturevalue("spark")
    data_dir = tmp_path_factory.mktemp("data")  # scratch files (a JSON-lines copy) go here, not into the repo
    settings = load_settings(spark_master="local[2]", spark_driver_memory="1g", data_dir=data_dir)
    rt = Runtime.open(settings, engine)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real TLC files in ../shared/data; tests that need them skip on a fresh user clone."""
    if not (SHARED_DATA / "green_tripdata_2023-01.parquet").exists():
        pytest.skip("../shared/data is not present (real TLC files are not part of the repo)")
    return SHARED_DATA


POSTGRES_URL_ENV = "TAXI_DURATION_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The real PostgreSQL server `.ci/run` starts; tests that need it skip without one."""
    found = os.environ.get(POSTGRES_URL_ENV)
    if not found:
        pytest.skip(f'no PostgreSQL server: `eval "$(bash scripts/postgres.sh start)"` sets {POSTGRES_URL_ENV}')
    return found


class Holding:
    """A real Python process that runs some code, prints one line, then waits until killed."""

    def __init__(self, code: str) -> None:
        script = f"{code}\nimport sys; sys.stdout.flush(); sys.stdin.read()"
        self.process = subprocess.Popen(
            [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.said = self.process.stdout.readline().strip()  # blocks until the code has run: no sleep
        assert self.said, f"the process ended without a word (exit {self.process.wait()})"

    def kill(self) -> None:
        """SIGKILL: no handler, no atexit, no finally runs."""
        self.process.kill()
        assert self.process.wait() == -signal.SIGKILL
