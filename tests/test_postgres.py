"""Trips through a real PostgreSQL server (the one `.ci/run` starts on loopback): loaded into a table, read
back by the native driver, the same rows; predictions written back twice, no duplicates, by `predict` and by
the stream's PostgreSQL writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import parse_months
from taxi_duration.ingest import postgres
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ingest.synth import DirtyShares, generate
from taxi_duration.ingest.validation import UNREADABLE_LINE
from taxi_duration.stream.events import FILE, RAW, REASON, TRIP_ID
from taxi_duration.stream.writers import PREDICTIONS, QUARANTINE, PostgresWriter
from taxi_duration.train.job import train
from tests.conftest import SPLIT, store_settings


@pytest.fixture(scope="module")
def url(postgres_url: str) -> str:
    return postgres_url


@pytest.fixture(scope="module")
def trips(url: str, tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """3,000 synthetic trips with a trip id, loaded into the `trips` table."""
    root = tmp_path_factory.mktemp("pg")
    generate(3_000, parse_months("2023-01"), root, seed=9, dirty=DirtyShares.clean())
    table = pq.read_table(next(root.glob("*.parquet")))
    table = table.append_column("trip_id", pa.array(np.arange(1, table.num_rows + 1), pa.int64()))
    postgres.write_table(url, "trips", table, replace=True)
    return table


def _sorted(rows: pa.Table) -> list[dict[str, Any]]:
    return sorted(rows.to_pylist(), key=lambda r: r["trip_id"])


def test_the_embedded_engine_reads_back_the_same_rows(url: str, trips: pa.Table) -> None:
    back = postgres.read_table(url, "trips")
    assert back.num_rows == trips.num_rows
    assert _sorted(back.select(trips.column_names)) == _sorted(trips)


def test_writing_predictions_twice_leaves_one_row_per_trip(url: str, trips: pa.Table) -> None:
    ids = trips.column("trip_id")
    first = pa.table({"trip_id": ids, "model_version": pa.array(["1"] * len(ids)), "minutes": np.full(len(ids), 10.0)})
    assert postgres.upsert(url, "predictions", first, key=["trip_id", "model_version"]) == len(ids)
    again = first.set_column(2, "minutes", pa.array(np.full(len(ids), 12.5)))
    assert postgres.upsert(url, "predictions", again, key=["trip_id", "model_version"]) == len(ids)
    stored = postgres.read_table(url, "predictions", ["trip_id", "minutes"])
    assert stored.num_rows == len(ids)
    assert set(stored.column("minutes").to_pylist()) == {12.5}


def test_the_password_never_shows(url: str) -> None:
    password = url.split(":")[2].split("@")[0]
    assert password not in postgres.redacted(url)
    wrong = url.replace(f":{password}@", ":not-the-password@")
    with pytest.raises(UsageError) as failure:
        postgres.read_table(wrong, "trips")
    assert "not-the-password" not in str(failure.value)
    assert "***" in str(failure.value)


def test_table_names_are_never_sql(url: str) -> None:
    with pytest.raises(UsageError, match="not a plain table"):
        postgres.read_table(url, "trips; DROP TABLE trips")


@pytest.fixture(scope="module")
def env(url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a `taxi-duration predict` against this server and a store with a trained champion."""
    root = tmp_path_factory.mktemp("store")
    generate(12_000, parse_months("2023-01..2023-03"), root / "raw", seed=2)
    settings = store_settings(root)
    train(settings, check_all(discover([root / "raw"])), SPLIT, "with_distance")
    return {**os.environ, "TAXI_DURATION_POSTGRES_URL": url, "MLFLOW_TRACKING_URI": str(settings.mlflow_tracking_uri)}


def predict(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("taxi-duration")), "predict", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_predict_scores_a_table_and_a_rerun_adds_no_rows(
    url: str, trips: pa.Table, env: dict[str, str], tmp_path: Path
) -> None:
    gaps = trips.slice(0, 500).to_pandas()
    gaps.loc[:9, "PULocationID"] = None  # ten trips without a pickup zone: counted, not predicted
    postgres.write_table(url, "trips_with_gaps", pa.Table.from_pandas(gaps, preserve_index=False), replace=True)
    args = ["--table", "trips_with_gaps", "--key", "trip_id", "--to", "trip_predictions", "--chunk-rows", "200"]
    for _ in range(2):
        run = predict(env, tmp_path, *args, "--out", str(tmp_path / "o.json"))
        assert run.returncode == 0, run.stderr
        assert url.split(":")[2].split("@")[0] not in run.stderr + run.stdout  # the password
    result = json.loads((tmp_path / "o.json").read_text())
    assert (result["rows_read"], result["predicted"], result["skipped"]) == (500, 490, {"no pu_location_id": 10})
    assert result["rows_in_target"] == 490
    stored = postgres.read_table(url, "trip_predictions").to_pandas().set_index("trip_id")
    assert len(stored) == 490
    assert (stored["p10_minutes"] <= stored["duration_minutes"]).all()
    assert (stored["duration_minutes"] <= stored["p90_minutes"]).all()


def test_batches_are_the_asked_size(url: str, trips: pa.Table) -> None:
    sizes = [chunk.num_rows for chunk in postgres.batches(url, "trips", 1_200)]
    assert sizes == [1_200, 1_200, 600]


def test_predict_counts_repeated_trip_ids_and_predicts_each_once(
    url: str, trips: pa.Table, env: dict[str, str], tmp_path: Path
) -> None:
    rows = trips.slice(0, 300).to_pandas()
    ids = rows["trip_id"].to_numpy()
    ids[200:220] = ids[0:20]  # repeats two chunks later
    ids[50:55] = ids[40:45]  # repeats in the same chunk
    ids[61] = ids[60]  # the first row of this id cannot be predicted: the second is
    rows["trip_id"] = ids
    rows.loc[60, "PULocationID"] = None
    postgres.write_table(url, "trips_repeated", pa.Table.from_pandas(rows, preserve_index=False), replace=True)
    args = ["--table", "trips_repeated", "--key", "trip_id", "--to", "repeated_predictions", "--chunk-rows", "100"]
    run = predict(env, tmp_path, *args, "--out", str(tmp_path / "o.json"))
    assert run.returncode == 0, run.stderr
    assert "25 repeated trip_id" in run.stderr
    result = json.loads((tmp_path / "o.json").read_text())
    assert result["skipped"] == {"no pu_location_id": 1, "repeated trip_id": 25}
    assert (result["rows_read"], result["predicted"], result["rows_in_target"]) == (300, 274, 274)
    stored = postgres.read_table(url, "repeated_predictions", ["trip_id"]).column("trip_id").to_pylist()
    assert sorted(stored) == sorted(set(ids))


def test_predict_from_a_table_that_does_not_exist_is_one_line(env: dict[str, str], tmp_path: Path) -> None:
    run = predict(env, tmp_path, "--table", "nosuchtable", "--key", "trip_id", "--to", "nowhere")
    assert run.returncode == 2
    assert run.stderr == 'error: cannot read table nosuchtable: relation "nosuchtable" does not exist\n'


def stream_rows(ids: list[str], version: str, minutes: float) -> pa.Table:
    """Predictions as a stream batch brings them to its writer (`scoring.score_batch`'s columns)."""
    n = len(ids)
    return pa.table(
        {
            TRIP_ID: pa.array(ids, pa.string()),
            "pickup_datetime": pa.array([datetime(2023, 3, 1, 8)] * n, pa.timestamp("us")),
            "pu_location_id": pa.array([74] * n, pa.int32()),
            "do_location_id": pa.array([75] * n, pa.int32()),
            "predicted_minutes": np.full(n, minutes),
            "p10_minutes": np.full(n, minutes - 2),
            "p90_minutes": np.full(n, minutes + 5),
            "model_version": pa.array([version] * n, pa.string()),
            "model_alias": pa.array(["champion"] * n, pa.string()),
            "feature_set": pa.array(["with_distance"] * n, pa.string()),
            "scored_at": pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def drop_table(url: str, table: str) -> None:
    """Start from no table: the server may hold one of an earlier run of the tests."""
    with postgres.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        connection.commit()


def test_a_stream_batch_written_again_leaves_one_row_per_trip_and_version(url: str, tmp_path: Path) -> None:
    """Spark runs the last batch again after kill -9 (same id, same events): the writer's second write leaves
    the table as one write left it; the quarantine's file is replaced."""
    drop_table(url, "stream_predictions")
    writer = PostgresWriter(url, "stream_predictions", tmp_path / "out")
    ids = [f"trips-000000-{i}" for i in range(100)]
    quarantine = pa.table(
        {RAW: ["not json"], FILE: ["/land/bad.jsonl"], TRIP_ID: pa.nulls(1, pa.string()), REASON: [UNREADABLE_LINE]}
    )
    writer.write(7, stream_rows(ids, "1", 10.0), quarantine)
    writer.write(7, stream_rows(ids, "1", 12.5), quarantine)  # the replay: scored again, a little later
    stored = postgres.read_table(url, "stream_predictions").to_pandas()
    assert len(stored) == 100
    assert sorted(stored[TRIP_ID]) == sorted(ids)
    assert set(stored["predicted_minutes"]) == {12.5}
    assert str(stored["scored_at"].dt.tz) == "UTC"
    assert [p.name for p in (tmp_path / "out" / QUARANTINE).iterdir()] == ["batch-00000007.parquet"]
    assert pq.read_table(tmp_path / "out" / QUARANTINE / "batch-00000007.parquet").equals(quarantine)
    assert not (tmp_path / "out" / PREDICTIONS).exists()  # the predictions are in the table only

    # A trip scored again by another version (redelivered after the watermark) is another row; a batch
    # without predictions leaves the table alone.
    writer.write(8, stream_rows(ids[:1], "2", 9.0), quarantine.slice(0, 0))
    writer.write(9, None, quarantine)
    keys = postgres.read_table(url, "stream_predictions", [TRIP_ID, "model_version"]).to_pylist()
    assert len(keys) == 101
    assert {tuple(k.values()) for k in keys} == {*((i, "1") for i in ids), (ids[0], "2")}
    assert postgres.repeated_keys(url, "stream_predictions", TRIP_ID) == {ids[0]}


def stream(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    folders = ["--input", str(tmp_path / "land"), "--output", str(tmp_path / "out")]
    command = [sys.executable, "-m", "taxi_duration", "stream", *folders, "--checkpoint", str(tmp_path / "ck")]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_a_stream_to_a_server_it_cannot_reach_is_one_line_and_writes_nothing(url: str, tmp_path: Path) -> None:
    (tmp_path / "land").mkdir()
    password = url.split(":")[2].split("@")[0]
    env = {**os.environ, "TAXI_DURATION_DATA_DIR": str(tmp_path / "data")}
    env["TAXI_DURATION_POSTGRES_URL"] = url.replace(f":{password}@", ":not-the-password@")
    run = stream(env, tmp_path, "--to", "stream_predictions")
    assert run.returncode == 2
    assert run.stderr.startswith("error: cannot connect to postgresql://taxi:***@")
    assert len(run.stderr.strip().splitlines()) == 1
    assert "not-the-password" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["land"]  # no checkpoint, no output
    del env["TAXI_DURATION_POSTGRES_URL"]
    run = stream(env, tmp_path, "--to", "stream_predictions")
    assert (run.returncode, run.stderr) == (
        2,
        "error: no database: set TAXI_DURATION_POSTGRES_URL=postgresql://user:password@host:port/db\n",
    )
