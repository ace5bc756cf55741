"""The stream: events replayed from trip files, scored exactly once, even across kill -9, with the minutes
every other road gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from taxi_duration import schema as s
from taxi_duration.config import CHAMPION, DEFAULT_MODEL, PRETRIP_CHAMPION, Settings
from taxi_duration.inputs import check_all, discover
from taxi_duration.replay import event_table, later_than, lines, replay
from taxi_duration.scorer import load
from taxi_duration.serving import Champions
from taxi_duration.stream import (
    _PICKUP_TEXT,
    EVENT_FIELDS,
    FILE,
    PREDICTIONS,
    QUARANTINE,
    RAW,
    REASON,
    TRIP_ID,
    Sink,
    pickup_times,
    run,
)
from taxi_duration.train import train
from taxi_duration.validation import UNREADABLE_LINE
from tests.conftest import SPLIT, store_settings

EVENTS = 300  # valid-looking events replayed per test: a few batches, seconds of Spark


@pytest.fixture(scope="module")
def trips(registry: Settings) -> pa.Table:
    """The test month's first EVENTS events, in pickup order."""
    files = check_all(discover([registry.data_dir / "raw" / "green_tripdata_2023-03.parquet"]))
    return event_table(registry, files).slice(0, EVENTS)


def bad_lines(latest: str) -> list[tuple[str, str]]:
    """(line, the reason it is quarantined for); pickups at the replay's latest, so none is late."""
    good = {"pu_location_id": 74, "do_location_id": 75, "passenger_count": 1, "trip_distance": 2.5}
    return [
        ("this is not json", UNREADABLE_LINE),
        ("[1, 2, 3]", UNREADABLE_LINE),
        ('{"trip_id": "cut", "pickup_datetime": "2023-03-01T0', UNREADABLE_LINE),
        (json.dumps({"pickup_datetime": latest, **good}), "no trip_id"),
        (json.dumps({"trip_id": "bad-zone", "pickup_datetime": latest, **good, "do_location_id": 265}), "unknown_zone"),
        (
            json.dumps({"trip_id": "bad-distance", "pickup_datetime": latest, **good, "trip_distance": -1.0}),
            "non_positive_distance",
        ),
        (json.dumps({"trip_id": "feb-30", "pickup_datetime": "2023-02-30T08:00:00", **good}), "no pickup_datetime"),
        (
            json.dumps({"trip_id": "clock-zero", "pickup_datetime": "1970-01-01T00:00:00", **good}),
            "pickup_out_of_range",
        ),
    ]


def land_events(trips: pa.Table, staging: Path, rows_per_file: int) -> tuple[list[Path], list[tuple[str, str]]]:
    """Event files in landing order: the replay, then bad lines, then a redelivery of the last 5 events."""
    files = replay(trips, staging, "trips", rows_per_file)
    latest = trips.column(s.PICKUP)[-1].as_py().isoformat()
    bad = bad_lines(latest)
    (staging / "bad.jsonl").write_text("".join(line + "\n" for line, _ in bad) + "\n\n")  # blank lines: skipped
    redelivered = files[-1].read_text().splitlines()[-5:]
    (staging / "again.jsonl").write_text("".join(line + "\n" for line in redelivered))
    landed = files[-1].stat().st_mtime_ns
    for extra in ("bad.jsonl", "again.jsonl"):  # after the replay's files, in the file source's order too
        landed = later_than(staging / extra, landed)
    return [*files, staging / "bad.jsonl", staging / "again.jsonl"], bad


def outputs(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Everything the stream wrote: predictions and quarantine, every batch file."""

    def read(name: str) -> pd.DataFrame:
        parts = sorted((folder / name).glob("batch-*.parquet"))
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else pd.DataFrame()

    return read(PREDICTIONS), read(QUARANTINE)


def expected_split(registry: Settings, trips: pa.Table) -> tuple[set[str], dict[str, str]]:
    """The replayed trip_ids the scorer predicts, and the others with their reasons."""
    scorer = load(registry, "models:/taxi-duration/1", registry.scratch_dir())
    answer = scorer.score(trips.drop([TRIP_ID]))
    assert answer is not None
    ids = trips.column(TRIP_ID).to_pylist()
    refused = {i: r for i, r in zip(ids, answer.reasons, strict=True) if r is not None}
    return set(ids) - set(refused), refused


def assert_exactly_once(
    registry: Settings, trips: pa.Table, bad: list[tuple[str, str]], predictions: pd.DataFrame, quarantine: pd.DataFrame
) -> None:
    """Every valid trip_id predicted once, every refused one and every bad line quarantined once, with its reason."""
    valid, refused = expected_split(registry, trips)
    assert valid
    assert refused  # the synthetic data is dirty
    assert Counter(predictions[TRIP_ID]) == Counter(valid)
    from_trips = quarantine[~quarantine[FILE].str.endswith("bad.jsonl")]
    assert Counter(from_trips[TRIP_ID]) == Counter(list(refused))
    assert dict(zip(from_trips[TRIP_ID], from_trips[REASON], strict=True)) == refused
    from_bad = quarantine[quarantine[FILE].str.endswith("bad.jsonl")]
    assert sorted(zip(from_bad[RAW], from_bad[REASON], strict=True)) == sorted(bad)


def test_pickup_times_read_iso_text_as_the_api_does() -> None:
    texts = pa.array(
        ["2023-01-10T08:00:00", "2023-01-10 08:00:00", "2023-01-10T08:05:00-05:00", "2023-01-10T13:05:00Z", None]
    )
    found = pickup_times(pa.concat_arrays([texts, pa.array(["2023-02-30T08:00:00", "soon"])])).to_pylist()
    assert [t.isoformat() if t else None for t in found] == [
        "2023-01-10T08:00:00",
        "2023-01-10T08:00:00",
        "2023-01-10T08:05:00",
        "2023-01-10T08:05:00",
        None,
        None,
        None,
    ]


def test_replay_lands_whole_files_with_stable_ids_and_no_dropoff(
    registry: Settings, trips: pa.Table, tmp_path: Path
) -> None:
    landed = replay(trips, tmp_path / "a", "trips", 128, rate=2_000)
    assert [p.name for p in landed] == ["trips-000000.jsonl", "trips-000001.jsonl", "trips-000002.jsonl"]
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temporary file left
    events = [json.loads(line) for p in landed for line in p.read_text().splitlines()]
    assert len(events) == EVENTS
    assert len({e[TRIP_ID] for e in events}) == EVENTS
    assert not any(s.DROPOFF in e for e in events)
    assert [e[s.PICKUP] for e in events] == sorted(e[s.PICKUP] for e in events)
    again = replay(trips, tmp_path / "b", "trips", 128)
    assert [p.read_text() for p in again] == [p.read_text() for p in landed]  # same trips, same events


@pytest.fixture
def spark_settings(registry: Settings, spark: Any) -> Settings:
    """The registry's settings on the shared session, small batches."""
    return registry.model_copy(update={"stream_max_files_per_trigger": 2})


def test_available_now_scores_every_event_once_and_quarantines_every_bad_line(
    spark_settings: Settings, trips: pa.Table, tmp_path: Path
) -> None:
    _, bad = land_events(trips, tmp_path / "land", rows_per_file=64)
    scorer = load(spark_settings, "models:/taxi-duration/1", spark_settings.scratch_dir())
    champions = Champions([scorer])
    finished = run(spark_settings, champions, tmp_path / "land", tmp_path / "out", tmp_path / "ck", available_now=True)
    predictions, quarantine = outputs(tmp_path / "out")
    assert_exactly_once(spark_settings, trips, bad, predictions, quarantine)
    assert finished.backlog == 0
    assert finished.read == EVENTS + len(bad) + 5  # the redelivered five were taken, then dropped
    assert finished.counts.predicted == len(predictions)
    assert predictions["model_version"].unique().tolist() == ["1"]
    assert predictions["feature_set"].unique().tolist() == ["with_distance"]  # each row names its model
    assert (predictions["p10_minutes"] <= predictions["predicted_minutes"]).all()
    assert (predictions["predicted_minutes"] <= predictions["p90_minutes"]).all()

    # One prediction everywhere: the same minutes as the scorer, and as the MLflow pyfunc, for the same trips.
    by_id = predictions.set_index(TRIP_ID)
    scored = scorer.score(trips.drop([TRIP_ID]))
    assert scored is not None
    ids = np.array(trips.column(TRIP_ID).to_pylist())[scored.predicted]
    assert np.abs(by_id.loc[ids, "predicted_minutes"].to_numpy() - scored.minutes[scored.predicted]).max() < 1e-6
    inputs = trips.drop([TRIP_ID]).to_pandas()[scored.predicted]
    whole = inputs.notna().all(axis=1).to_numpy()  # the pyfunc's signature wants every integer given
    pyfunc = mlflow.pyfunc.load_model("models:/taxi-duration/1")
    streamed = by_id.loc[ids[whole], "predicted_minutes"].to_numpy()
    assert np.abs(pyfunc.predict(inputs[whole]) - streamed).max() < 1e-6

    # Run again on the same checkpoint: nothing new landed, nothing is written twice.
    again = run(spark_settings, champions, tmp_path / "land", tmp_path / "out", tmp_path / "ck", available_now=True)
    assert again.counts.batches == 0
    assert [len(f) for f in outputs(tmp_path / "out")] == [len(predictions), len(quarantine)]


@pytest.fixture(scope="module")
def champions(registry: Settings, tmp_path_factory: pytest.TempPathFactory) -> Champions:
    """The registry's champion and a pretrip one trained on the same trips, in a store of its own (the shared
    registry is only read), as a stream without --model holds them."""
    store = store_settings(tmp_path_factory.mktemp("pretrip"))
    train(store, check_all(discover([registry.data_dir / "raw"])), SPLIT, "pretrip")
    work = registry.scratch_dir()
    pretrip = load(store, f"models:/taxi-duration@{PRETRIP_CHAMPION}", work)
    return Champions([load(registry, DEFAULT_MODEL, work), pretrip])


def test_each_event_is_scored_by_the_champion_the_api_would_pick(
    champions: Champions, trips: pa.Table, tmp_path: Path
) -> None:
    """Events with a distance go to the with_distance champion, events without to the pretrip one (the API's
    rule, `Champions.pick`), and each prediction row names the model that scored it."""
    events = trips.slice(0, 60)
    given = np.arange(events.num_rows) % 3 != 0  # every third event without its distance
    miles = np.where(given, events.column(s.DISTANCE).to_numpy(zero_copy_only=False), np.nan)
    events = events.set_column(events.schema.get_field_index(s.DISTANCE), s.DISTANCE, pa.array(miles, from_pandas=True))
    # The batch as the stream's frame brings it to the sink: the line, its file, no reason yet, the pickup as text.
    n = events.num_rows
    fields = [c for c in EVENT_FIELDS if c != s.PICKUP]
    batch = pa.table(
        {
            RAW: [line.strip() for line in lines(events)],
            FILE: ["events.jsonl"] * n,
            REASON: pa.nulls(n, pa.string()),
            TRIP_ID: events.column(TRIP_ID),
            _PICKUP_TEXT: [t.isoformat() for t in events.column(s.PICKUP).to_pylist()],
            **{c: events.column(c) if c in events.column_names else pa.nulls(n, pa.float64()) for c in fields},
        }
    )
    sink = Sink(champions, tmp_path)
    sink.write(batch, 0)
    predictions, _ = outputs(tmp_path)
    assert sink.counts.predicted == len(predictions) > 30
    ids = events.column(TRIP_ID).to_pylist()
    with_distance = dict(zip(ids, events.column(s.DISTANCE).is_valid().to_pylist(), strict=True))
    for row in predictions.itertuples():
        model = champions.pick(with_distance[row.trip_id])
        assert (row.model_alias, row.model_version, row.feature_set) == (model.alias, model.version, model.feature_set)
    assert set(predictions["model_alias"]) == {CHAMPION, PRETRIP_CHAMPION}
    assert set(predictions["feature_set"]) == {"with_distance", "pretrip"}


class Stream:
    """`taxi-duration stream` in its own process group (the JVM with it), to be killed with SIGKILL."""

    def __init__(self, settings: Settings, root: Path, *options: str) -> None:
        environment = {
            **os.environ,
            "MLFLOW_TRACKING_URI": str(settings.mlflow_tracking_uri),
            "TAXI_DURATION_DATA_DIR": str(settings.data_dir),
            "TAXI_DURATION_SPARK_MASTER": "local[2]",
            "TAXI_DURATION_SPARK_DRIVER_MEMORY": "1g",
        }
        command = [sys.executable, "-m", "taxi_duration", "stream", "--model", "models:/taxi-duration/1"]
        command += ["--input", str(root / "land"), "--output", str(root / "out"), "--checkpoint", str(root / "ck")]
        self.process = subprocess.Popen(
            [*command, *options],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole group: the Python driver and its JVM, mid-whatever."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def wait_for(condition: Callable[[], bool], stream: Stream, timeout_s: float = 180) -> None:
    """Poll until `condition` holds; fail if the stream dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if stream.process.poll() is not None:
            _, errors = stream.process.communicate()
            raise AssertionError(f"the stream ended (exit {stream.process.returncode}): {errors}")
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def batch_files(root: Path) -> int:
    return len(list((root / "out" / PREDICTIONS).glob("batch-*.parquet")))


def in_flight(root: Path) -> bool:
    """A batch is logged in the checkpoint's offsets and not yet committed: killing now interrupts it."""
    logged = {p.name for p in (root / "ck" / "offsets").glob("[0-9]*")}
    committed = {p.name for p in (root / "ck" / "commits").glob("[0-9]*")}
    return bool(logged - committed) and batch_files(root) > 0


def land_slowly(files: list[Path], landing: Path, stop: threading.Event) -> threading.Thread:
    """Move staged event files into the landing folder one at a time, as a feed would, in a thread."""

    def land() -> None:
        for f in files:
            if stop.wait(0.8):
                return
            f.rename(landing / f.name)

    thread = threading.Thread(target=land, daemon=True)
    thread.start()
    return thread


def test_exactly_once_after_kill_9_while_files_keep_landing(
    registry: Settings, trips: pa.Table, tmp_path: Path
) -> None:
    files, bad = land_events(trips, tmp_path / "staging", rows_per_file=10)
    (tmp_path / "land").mkdir()
    stop = threading.Event()
    landing = land_slowly(files, tmp_path / "land", stop)
    options = ("--trigger-seconds", "0.5", "--max-files-per-trigger", "2")
    # Three kills: once a batch is written, then twice in the middle of a batch (logged, not committed).
    moments = [lambda: True, lambda: in_flight(tmp_path), lambda: in_flight(tmp_path)]
    try:
        for moment in moments:
            stream = Stream(registry, tmp_path, *options)
            before = batch_files(tmp_path)
            wait_for(lambda: batch_files(tmp_path) > before and moment(), stream)  # noqa: B023 (called in the loop)
            stream.kill()
    finally:
        stop.set()
        landing.join()
    for f in files:  # what had not landed when the kills were done lands now
        if f.exists():
            f.rename(tmp_path / "land" / f.name)
    final = Stream(registry, tmp_path, "--available-now")
    _, errors = final.process.communicate(timeout=300)
    assert final.process.returncode == 0, errors
    predictions, quarantine = outputs(tmp_path / "out")
    assert_exactly_once(registry, trips, bad, predictions, quarantine)


def stream_command(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taxi_duration", "stream", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "TAXI_DURATION_DATA_DIR": str(tmp_path / "data")},
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("problem", ["no landing folder", "another stream's checkpoint", "not a checkpoint"])
def test_bad_folders_are_one_line_and_exit_1_with_nothing_written(tmp_path: Path, problem: str) -> None:
    (tmp_path / "land").mkdir()
    (tmp_path / "other").mkdir()
    land, checkpoint = tmp_path / "land", tmp_path / "ck"
    if problem == "no landing folder":
        land = tmp_path / "missing"
        expected = "landing folder does not exist"
    elif problem == "another stream's checkpoint":
        first = stream_command(
            tmp_path, "--input", tmp_path / "other", "--output", tmp_path / "o", "--checkpoint", checkpoint,
            "--model", "runs:/nothing/model",
        )  # fmt: skip
        assert first.returncode != 0  # no such model, but the checkpoint now names its stream
        expected = "checkpoint of another stream"
    else:
        (checkpoint / "offsets").mkdir(parents=True)
        expected = "not a taxi-duration stream checkpoint"
    result = stream_command(tmp_path, "--input", land, "--output", tmp_path / "out", "--checkpoint", checkpoint)
    assert result.returncode == 1
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()
