"""Shared fixtures: one Spark session for the whole run, small hand-written trips, the real files."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_duration.core import schema as s
from taxi_duration.core.config import Engine, Settings, load_settings
from taxi_duration.core.months import parse_months
from taxi_duration.engines.frames import Runtime
from taxi_duration.features import store as fs
from taxi_duration.features.definitions import featurize
from taxi_duration.ingest.inputs import InputFile, check_all, discover
from taxi_duration.ingest.readers import read_trips
from taxi_duration.ingest.validation import apply_repairs
from taxi_duration.ops.cluster import Cluster
from taxi_duration.serve.online import features_table, trips_table
from taxi_duration.train.dataset import prepare
from taxi_duration.train.splits import TimeSplit

if TYPE_CHECKING:
    from taxi_duration.train.job import Outcome  # MLflow loads only in the runs that train

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The synthetic months the training tests generate: train 2023-01, validate 2023-02, test 2023-03.
SPLIT = TimeSplit.last_two_held_out(parse_months("2023-01..2023-03"))

# A request the API serves, in the style of the TLC files, and the keys the API tests set.
TRIP = {
    "pickup_datetime": "2023-03-14T08:30:00",
    "pu_location_id": 74,
    "do_location_id": 236,
    "passenger_count": 1,
    "trip_distance": 2.4,
}
API_KEY, ADMIN_KEY = "test-predict-key", "test-admin-key"
# Times Square to the Upper West Side, as a Kaggle client sends it: coordinates, no zones.
POINTS = {"pickup_longitude": -73.9855, "pickup_latitude": 40.7580, "dropoff_longitude": -73.9712}
POINTS |= {"dropoff_latitude": 40.7831}
KAGGLE = {k: v for k, v in TRIP.items() if not k.endswith("location_id")} | POINTS


def assert_served_and_refused_counted(metrics: str) -> None:
    """`/metrics` of a server (live or in process) that answered one `TRIP` and refused one: each counted by
    status, timed, its minutes and the model version exposed."""
    assert 'taxi_duration_requests_total{endpoint="/predict",status="200"}' in metrics
    assert 'taxi_duration_requests_total{endpoint="/predict",status="422"}' in metrics
    assert 'taxi_duration_request_seconds_bucket{endpoint="/predict",le="0.001"}' in metrics
    assert "taxi_duration_predicted_minutes_count" in metrics
    assert "taxi_duration_model_version 1.0" in metrics


def store_settings(root: Path, **overrides: str) -> Settings:
    """Settings whose data and MLflow store (SQLite) live under `root`, with the quick model search."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    return load_settings(**{"data_dir": root, "mlflow_tracking_uri": uri, "search": "quick", **overrides})


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


# Trips the validation tests break one rule at a time (test_validation, test_quality).
RULE_PICKUP = datetime(2023, 1, 10, 8, 0)


def timed_trip(minutes: float = 15, **overrides: Any) -> dict[str, Any]:
    """A green trip starting at RULE_PICKUP that lasts `minutes`."""
    row = green_row(lpep_pickup_datetime=RULE_PICKUP, lpep_dropoff_datetime=RULE_PICKUP + timedelta(minutes=minutes))
    row.update(overrides)
    return row


# code -> (a row that breaks only that rule, a row that is close to it but clean)
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "missing_required": (timed_trip(PULocationID=None), timed_trip(VendorID=None, fare_amount=None)),
    "dropoff_before_pickup": (timed_trip(minutes=-1), timed_trip(minutes=1, trip_distance=0.3)),
    "duration_too_short": (timed_trip(minutes=0.5, trip_distance=0.1), timed_trip(minutes=1, trip_distance=0.3)),
    "duration_too_long": (timed_trip(minutes=6 * 60), timed_trip(minutes=5 * 60 - 1)),
    "pickup_outside_month": (
        timed_trip(
            lpep_pickup_datetime=datetime(2022, 12, 31, 23, 50), lpep_dropoff_datetime=datetime(2023, 1, 1, 0, 5)
        ),
        timed_trip(
            lpep_pickup_datetime=datetime(2023, 1, 31, 23, 50), lpep_dropoff_datetime=datetime(2023, 2, 1, 0, 5)
        ),
    ),
    "unknown_zone": (timed_trip(DOLocationID=264), timed_trip(DOLocationID=263, PULocationID=1)),
    "non_positive_distance": (timed_trip(trip_distance=0.0), timed_trip(trip_distance=0.01)),
    "huge_distance": (timed_trip(minutes=4 * 60, trip_distance=150.0), timed_trip(minutes=4 * 60, trip_distance=99.0)),
    "impossible_speed": (timed_trip(minutes=15, trip_distance=30.0), timed_trip(minutes=15, trip_distance=15.0)),
    "bad_passenger_count": (timed_trip(passenger_count=10), timed_trip(passenger_count=9)),
    "negative_fare": (timed_trip(fare_amount=-5.0), timed_trip(fare_amount=0.0)),
}


def all_cases() -> list[dict[str, Any]]:
    """Every case in one file; the rate code (no rule reads it) keeps similar clean rows from being copies."""
    rows = [{**row, "RatecodeID": i} for i, row in enumerate(row for pair in CASES.values() for row in pair)]
    return [*rows, timed_trip(minutes=33), timed_trip(minutes=33)]  # and one duplicate


# Trips the feature tests compute every feature on (test_features, test_feature_store).
def feature_trips(shift: timedelta = timedelta(0)) -> list[dict[str, Any]]:
    """Trips that exercise every branch: each weekday incl. Sunday, a holiday, airports, unknown vendor."""
    rows = []
    start = datetime(2023, 1, 1, 0, 30) + shift  # unshifted: a Sunday, and New Year's Day
    for i in range(60):
        pickup = start + timedelta(hours=11 * i, minutes=7 * i, seconds=i)
        rows.append(
            green_row(
                lpep_pickup_datetime=pickup,
                lpep_dropoff_datetime=pickup + timedelta(minutes=5 + i % 40, seconds=13 * i % 60),
                PULocationID=[74, 132, 1, 138, 161, 236][i % 6],
                # Six pairs of ten trips, but every tenth trip goes to a rare zone: half the pairs drop
                # below MIN_TRIPS and fall back to their pickup zone.
                DOLocationID=41 if i % 10 == 9 else [75, 236, 132][i % 3],
                passenger_count=i % 4,
                trip_distance=0.5 + (i * 37 % 150) / 10,
                VendorID=None if i % 7 == 0 else 2,
            )
        )
    return rows


def featurized(runtime: Runtime, path: Path) -> Any:
    """The trips of one file, repaired and featurized, keeping pickup and distance."""
    return featurize(runtime, apply_repairs(read_trips(runtime, check_all([path]))), keep=(s.PICKUP, s.DISTANCE))


def online_features(trip: Mapping[str, Any], store: fs.FeatureStore | None = None) -> dict[str, Any]:
    """The features of one trip (canonical or TLC column names; times as ISO text or datetime) by the
    online path's definitions, with the store's statistics when a store is given."""
    return dict(features_table(trips_table(pd.DataFrame([dict(trip)])), store).to_pylist()[0])


# Test tiers, one per test (markers in pyproject.toml), given here by what a test needs instead of by hand on
# hundreds of tests, so a new test lands in the right tier by the fixtures it asks for:
#   e2e     a trained model or registry, a live server, a `taxi-duration` process, PostgreSQL, or the real
#           TLC files: the slow runs that prove the parts work together
#   parity  the Spark session: the Spark case of a test run on every engine, or a check of Spark alone
#   unit    everything else: in process, small hand-written data, DuckDB and pandas (`make test-fast`)
TIERS = ("unit", "parity", "e2e")
E2E_FIXTURES = {"shared_data", "postgres_url", "registry", "spark_cluster"}
E2E_MODULES = {
    "test_bench",  # a `taxi-duration bench` process
    "test_cli",  # a `taxi-duration` process per test
    "test_migration",  # trains on the real files
    "test_notebooks",  # Jupyter kernels running the notebooks: Spark, training, the registry
    "test_postgres",
    "test_serving",  # trains a registry, starts servers
    "test_setup",  # runs `make` and scripts/setup.sh
    "test_training",  # trains and registers models
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier, unless it says its own."""
    for item in items:
        if "spark_cluster" in item.fixturenames:
            item.add_marker("cluster")
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        if item.path.stem in E2E_MODULES or E2E_FIXTURES & set(item.fixturenames):
            item.add_marker("e2e")
        elif item.get_closest_marker("spark") or "spark" in item.fixturenames:
            item.add_marker("parity")
        else:
            item.add_marker("unit")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The one Spark session of the test run (local[2], small memory)."""
    from taxi_duration.engines.spark import get_spark

    session = get_spark("local[2]", "1g", app_name="taxi-duration-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A Spark standalone cluster for the run, started and stopped by `taxi-duration cluster up` and `down` as a
    user would: a master and two workers of one core and 1g each. Stopping it must leave no process behind:
    not a daemon, not an executor, not a Python worker."""
    from taxi_duration.ops import cluster

    data_dir = tmp_path_factory.mktemp("cluster")
    env = {**os.environ, "TAXI_DURATION_DATA_DIR": str(data_dir)}
    up = [sys.executable, "-m", "taxi_duration", "cluster", "up", "--workers", "2", "--memory-per-worker", "1g"]
    started = subprocess.run(up, capture_output=True, text=True, env=env, timeout=300, check=False)
    state = cluster.status(data_dir / "cluster")
    try:
        assert started.returncode == 0, started.stderr
        assert state is not None
        assert started.stdout.strip() == state.master_url
        yield state
    finally:
        processes = _tree(state.processes()) if state else []
        down = subprocess.run([*up[:4], "down"], capture_output=True, text=True, env=env, timeout=120, check=False)
        assert down.returncode == 0, down.stderr
        assert not [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _tree(tags: list[str]) -> list[psutil.Process]:
    """The processes named by run tags and every process under them."""
    found = []
    for tag in tags:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(int(tag.partition("-")[0]))
            found += [parent, *parent.children(recursive=True)]
    return found


@pytest.fixture
def runtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """An open engine: DuckDB, or each of FAST_ENGINES or ALL_ENGINES when parametrized (`indirect=True`)."""
    engine: Engine = getattr(request, "param", Engine.DUCKDB)
    if engine is Engine.SPARK:
        request.getfixturevalue("spark")
    data_dir = tmp_path_factory.mktemp("data")  # scratch files (a JSON-lines copy) go here, not into the repo
    settings = load_settings(spark_master="local[2]", spark_driver_memory="1g", data_dir=data_dir)
    rt = Runtime.open(settings, engine)
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A store whose champion is a small LightGBM model trained on `with_distance`, shared by the modules that
    only read it (the stream, the dashboard): a test that trains or moves the alias needs its own store."""
    from taxi_duration.ingest.synth import generate
    from taxi_duration.train.job import train  # here: MLflow loads only in the runs that train

    root = tmp_path_factory.mktemp("registry")
    generate(24_000, parse_months("2023-01..2023-03"), root / "raw", seed=4)
    settings = store_settings(root, spark_master="local[2]", spark_driver_memory="1g")
    train(settings, check_all(discover([root / "raw"])), SPLIT, "with_distance")
    return settings


@pytest.fixture(scope="session")
def raw(tmp_path_factory: pytest.TempPathFactory) -> list[InputFile]:
    """Three synthetic months of 8,000 trips: the split's train, validate and test parts."""
    from taxi_duration.ingest.synth import generate

    root = tmp_path_factory.mktemp("raw")
    generate(24_000, parse_months("2023-01..2023-03"), root, seed=3)
    return check_all(discover([root]))


@dataclass(frozen=True)
class SparkRun:
    """One Spark training run: its settings, its outcome, the progress it reported, and how many Spark jobs it
    started."""

    settings: Settings
    outcome: Outcome
    searched: list[tuple[str, int, int]]
    jobs: int


@pytest.fixture(scope="session")
def spark_run(raw: list[InputFile], tmp_path_factory: pytest.TempPathFactory, spark: Any) -> SparkRun:
    """One Spark training run in local mode on `raw` (the quick search, two fits at a time), with the progress
    it reported: the training tests read it, and the cluster's training must give its metrics."""
    from mlflow.tracking import MlflowClient

    from taxi_duration.train.job import train

    settings = store_settings(
        tmp_path_factory.mktemp("spark-store"),
        engine="spark",
        spark_master="local[2]",
        spark_driver_memory="1g",
        spark_parallelism="2",
        search="quick",
    )
    searched: list[tuple[str, int, int]] = []
    # The jobs of the search's candidates carry their candidate's job group (in the timeline); every other job
    # of the run, none. Ids seen before the run (other tests share the session) are not the run's.
    tracker = spark.sparkContext.statusTracker()
    before = set(tracker.getJobIdsForGroup())
    outcome = train(settings, raw, SPLIT, "with_distance", on_progress=lambda *p: searched.append(p))
    ungrouped = set(tracker.getJobIdsForGroup()) - before
    client = MlflowClient(settings.mlflow_tracking_uri)
    timeline = json.loads(Path(client.download_artifacts(outcome.run_id, "search/timeline.json")).read_text())
    grouped = {job for span in timeline["candidates"] for job in span["spark_job_ids"]}
    return SparkRun(settings, outcome, searched, len(ungrouped | grouped))


@pytest.fixture(scope="session")
def prepared_spark(tmp_path_factory: pytest.TempPathFactory, spark: Any) -> Any:
    """Three synthetic months of 3,000 trips prepared on the shared Spark session: small Spark fits."""
    from taxi_duration.ingest.synth import generate

    root = tmp_path_factory.mktemp("native")
    generate(9_000, parse_months("2023-01..2023-03"), root / "raw", seed=5)
    runtime = Runtime.open(load_settings(spark_master="local[2]", spark_driver_memory="1g"), Engine.SPARK)
    return prepare(runtime, check_all(discover([root / "raw"])), SPLIT, root / "work")


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
        self.close()

    def close(self) -> None:
        """Close this side of the pipes (left open, they warn when collected, in whichever test runs then)."""
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
