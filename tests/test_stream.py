"""The stream: events replayed from trip files, scored exactly once, even across kill -9, with the minutes
every other road gives."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from mlflow import MlflowClient

from taxi_duration.core import schema as s
from taxi_duration.core.config import CHAMPION, DEFAULT_MODEL, MODEL_NAME, PRETRIP_CHAMPION, Settings
from taxi_duration.core.errors import BadInputError
from taxi_duration.core.months import parse_months
from taxi_duration.ingest import postgres
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ingest.validation import UNREADABLE_LINE
from taxi_duration.serve.holder import Champions, ModelHolder
from taxi_duration.serve.scorer import load
from taxi_duration.stream.checkpoint import MANIFEST, check_folders
from taxi_duration.stream.events import EVENT_FIELDS, FILE, PICKUP_TEXT, RAW, REASON, TRIP_ID
from taxi_duration.stream.landing import ADMITTED, TAIL_QUIET_FACTOR, Intake, later_than
from taxi_duration.stream.predictions import Sink, batch_records, run
from taxi_duration.stream.replay import event_table, lines, replay
from taxi_duration.stream.scoring import pickup_times
from taxi_duration.stream.writers import PREDICTIONS, QUARANTINE, ParquetWriter, sink_of
from taxi_duration.train.job import train
from tests.conftest import SPLIT, store_settings
from tests.test_postgres import drop_table

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
        (  # spaces around a number make it none, as the API says
            json.dumps({"trip_id": "padded-zone", "pickup_datetime": latest, **good, "pu_location_id": "   74   "}),
            "no pu_location_id",
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
    said: list[tuple[str, int, float | None]] = []
    landed = replay(
        trips, tmp_path / "a", "trips", 128, rate=2_000, on_file=lambda p, n, s: said.append((p.name, n, s))
    )
    assert [p.name for p in landed] == ["trips-000000.jsonl", "trips-000001.jsonl", "trips-000002.jsonl"]
    assert [(name, n) for name, n, _ in said] == [(p.name, n) for p, n in zip(landed, (128, 128, 44), strict=True)]
    left = [s for _, _, s in said]
    assert left[0] == pytest.approx((EVENTS - 0) / 2_000, abs=0.05)  # the pace's end, from the first file on
    assert left == sorted(left, reverse=True)
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temporary file left
    events = [json.loads(line) for p in landed for line in p.read_text().splitlines()]
    assert len(events) == EVENTS
    assert len({e[TRIP_ID] for e in events}) == EVENTS
    assert not any(s.DROPOFF in e for e in events)
    assert [e[s.PICKUP] for e in events] == sorted(e[s.PICKUP] for e in events)
    again = replay(trips, tmp_path / "b", "trips", 128, on_file=lambda p, n, s: said.append((p.name, n, s)))
    assert [p.read_text() for p in again] == [p.read_text() for p in landed]  # same trips, same events
    assert said[-1][2] is None  # no pace, no time left to tell


def test_replay_stopped_by_ctrl_c_says_what_landed(tmp_path: Path) -> None:
    from taxi_duration.ingest.synth import generate

    [month] = generate(600, parse_months("2023-03"), tmp_path / "trips", seed=0)
    command = [sys.executable, "-m", "taxi_duration", "replay", str(month), "--to", str(tmp_path / "land")]
    env = {**os.environ, "TAXI_DURATION_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen(
        [*command, "--rate", "100", "--rows-per-file", "50"], env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not list((tmp_path / "land").glob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=30)
    files = sorted((tmp_path / "land").glob("*.jsonl"))
    events = sum(len(f.read_text().splitlines()) for f in files)
    assert process.returncode == 130
    assert 0 < len(files) < 12
    assert errors.strip().splitlines()[-1] == (
        f"stopped: {events:,} of 600 events landed in {len(files)} file(s) in {tmp_path / 'land'}; the rest did "
        "not land"
    )


@pytest.fixture
def spark_settings(registry: Settings, spark: Any) -> Settings:
    """The registry's settings on the shared session, small batches."""
    return registry.model_copy(update={"stream_max_files_per_trigger": 2, "stream_settle_seconds": 0.05})


def test_available_now_scores_every_event_once_and_quarantines_every_bad_line(
    spark_settings: Settings, trips: pa.Table, tmp_path: Path
) -> None:
    _, bad = land_events(trips, tmp_path / "land", rows_per_file=64)
    scorer = load(spark_settings, "models:/taxi-duration/1", spark_settings.scratch_dir())
    champions = Champions([scorer])
    finished = run(
        spark_settings, lambda: champions, tmp_path / "land", tmp_path / "out", tmp_path / "ck", available_now=True
    )
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
    again = run(
        spark_settings, lambda: champions, tmp_path / "land", tmp_path / "out", tmp_path / "ck", available_now=True
    )
    assert again.counts.batches == 0
    assert [len(f) for f in outputs(tmp_path / "out")] == [len(predictions), len(quarantine)]

    # Its dedup state damaged, the next batch cannot run: one line that says so, Spark's text in a file.
    for delta in (tmp_path / "ck" / "state").rglob("*.delta"):
        delta.write_bytes(b"\x00 not a state file")
    (tmp_path / "land" / "late.jsonl").write_text(next(lines(trips.slice(0, 1))))
    with pytest.raises(BadInputError, match=r"the dedup state in .* cannot be read") as refused:
        run(spark_settings, lambda: champions, tmp_path / "land", tmp_path / "out", tmp_path / "ck", True)
    assert len(str(refused.value).splitlines()) == 1
    assert "CANNOT_LOAD_STATE_STORE" in (tmp_path / "ck" / "stream-error.log").read_text()


def test_a_stream_to_postgresql_upserts_every_prediction_once(
    registry: Settings, trips: pa.Table, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stream --to TABLE`: the PostgreSQL writer behind the same run. The table holds what the Parquet files
    would, one row a trip, the quarantine stays files in the output, and the summary says where they are."""
    _, bad = land_events(trips, tmp_path / "land", rows_per_file=64)
    monkeypatch.setenv("TAXI_DURATION_POSTGRES_URL", postgres_url)  # the database of `--to`, as for `predict`
    table = "streamed_trips"
    drop_table(postgres_url, table)
    finished = Stream(registry, tmp_path, "--available-now", "--to", table)
    _, errors = finished.process.communicate(timeout=300)
    assert finished.process.returncode == 0, errors
    predictions = postgres.read_table(postgres_url, table).to_pandas()
    _, quarantine = outputs(tmp_path / "out")
    assert_exactly_once(registry, trips, bad, predictions, quarantine)
    assert not (tmp_path / "out" / PREDICTIONS).exists()
    summary = errors.strip().splitlines()[-1]
    assert f"{len(predictions):,} predicted, {len(quarantine):,} quarantined" in summary
    assert summary.endswith(
        f". Predictions in table {table} at {postgres.redacted(postgres_url)}, "
        f"quarantine in {tmp_path / 'out' / QUARANTINE}"
    )


@pytest.fixture(scope="module")
def pretrip_store(registry: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A store of its own (the shared registry is only read) with a pretrip champion trained on the same trips."""
    store = store_settings(tmp_path_factory.mktemp("pretrip"))
    train(store, check_all(discover([registry.data_dir / "raw"])), SPLIT, "pretrip")
    return store


@pytest.fixture(scope="module")
def champions(registry: Settings, pretrip_store: Settings) -> Champions:
    """The registry's champion and the pretrip one, as a stream without --model holds them."""
    work = registry.scratch_dir()
    pretrip = load(pretrip_store, f"models:/taxi-duration@{PRETRIP_CHAMPION}", work)
    return Champions([load(registry, DEFAULT_MODEL, work), pretrip])


def as_batch(events: pa.Table) -> pa.Table:
    """Events as the stream's frame brings them to the sink: the line, its file, no reason yet, the pickup as text."""
    n = events.num_rows
    fields = [c for c in EVENT_FIELDS if c != s.PICKUP]
    return pa.table(
        {
            RAW: [line.strip() for line in lines(events)],
            FILE: ["events.jsonl"] * n,
            REASON: pa.nulls(n, pa.string()),
            TRIP_ID: events.column(TRIP_ID),
            PICKUP_TEXT: [t.isoformat() for t in events.column(s.PICKUP).to_pylist()],
            **{c: events.column(c) if c in events.column_names else pa.nulls(n, pa.float64()) for c in fields},
        }
    )


def test_each_event_is_scored_by_the_champion_the_api_would_pick(
    champions: Champions, trips: pa.Table, tmp_path: Path
) -> None:
    """Events with a distance go to the with_distance champion, events without to the pretrip one (the API's
    rule, `Champions.pick`), and each prediction row names the model that scored it."""
    events = trips.slice(0, 60)
    given = np.arange(events.num_rows) % 3 != 0  # every third event without its distance
    miles = np.where(given, events.column(s.DISTANCE).to_numpy(zero_copy_only=False), np.nan)
    events = events.set_column(events.schema.get_field_index(s.DISTANCE), s.DISTANCE, pa.array(miles, from_pandas=True))
    sink = Sink(lambda: champions, ParquetWriter(tmp_path))
    sink.write(as_batch(events), 0)
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
            "TAXI_DURATION_STREAM_SETTLE_SECONDS": "0.1",
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


PROBLEMS = {
    "no landing folder": "landing folder does not exist",
    "another stream's checkpoint": "checkpoint of another stream",
    "not a checkpoint": "not a taxi-duration stream checkpoint",
    "a damaged manifest": f"{MANIFEST}: damaged",
    "a damaged log of Spark's": "offsets/3: a damaged file of the stream's checkpoint",
    "a new checkpoint on an old output": "written by another checkpoint",
}


@pytest.mark.parametrize("problem", PROBLEMS)
def test_bad_folders_are_one_line_and_exit_1_with_nothing_written(tmp_path: Path, problem: str) -> None:
    (tmp_path / "land").mkdir()
    (tmp_path / "other").mkdir()
    land, checkpoint, out = tmp_path / "land", tmp_path / "ck", tmp_path / "out"
    if problem == "no landing folder":
        land = tmp_path / "missing"
    elif problem == "another stream's checkpoint":
        first = stream_command(
            tmp_path, "--input", tmp_path / "other", "--output", tmp_path / "o", "--checkpoint", checkpoint,
            "--model", "runs:/nothing/model",
        )  # fmt: skip
        assert first.returncode != 0  # no such model, but the checkpoint now names its stream
    elif problem == "not a checkpoint":
        (checkpoint / "offsets").mkdir(parents=True)
    elif problem == "a damaged manifest":
        checkpoint.mkdir()
        (checkpoint / MANIFEST).write_text('{"input": "/tmp/la')
    elif problem == "a damaged log of Spark's":
        check_folders(land, out, checkpoint)
        (checkpoint / "offsets").mkdir()
        (checkpoint / "offsets" / "3").write_text('v1\n{"batchWatermarkMs":0,"batchTime')
    else:
        check_folders(land, out, tmp_path / "earlier")
        (out / PREDICTIONS).mkdir()
        (out / PREDICTIONS / "batch-00000000.parquet").write_bytes(b"a batch")
    before = sorted(out.rglob("*"))
    result = stream_command(tmp_path, "--input", land, "--output", out, "--checkpoint", checkpoint)
    assert result.returncode == 1
    assert PROBLEMS[problem] in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sorted(out.rglob("*")) == before


# The landing folder: every landed byte admitted once, whole lines, in a stable order (no Spark).


def aged(path: Path, seconds: float) -> Path:
    """Make `path` look untouched for `seconds`, as a file its writer left that long ago."""
    past = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(past, past))
    return path


def admitted_bytes(admitted: Path) -> dict[str, bytes]:
    """Each landed file's bytes as its admitted parts hold them, parts in order."""
    found: dict[str, bytes] = {}
    for part in sorted(p for p in admitted.iterdir() if not p.name.startswith(".")):
        name = part.name.split("-", 1)[1]
        found[name] = found.get(name, b"") + part.read_bytes()
    return found


def test_a_file_written_in_place_is_read_in_whole_lines_and_its_appended_tail_later(tmp_path: Path) -> None:
    land = tmp_path / "land"
    land.mkdir()
    intake = Intake(land, tmp_path / "ck" / ADMITTED, settle_s=5)
    f = land / "in-place.jsonl"
    f.write_bytes(b'{"trip_id": "a"}\n{"trip_id": "b"}\n{"trip_id": "c", "pick')
    assert (intake.look().admitted, intake.pending()) == ([], 1)  # still being written: it waits
    aged(f, 6)
    look = intake.look()
    assert look.admitted[0].read_bytes() == b'{"trip_id": "a"}\n{"trip_id": "b"}\n'  # whole lines only
    assert intake.pending() == 1  # the unfinished line waits for its writer
    with f.open("ab") as fh:  # the writer comes back, ten seconds later, without a rename
        fh.write(b'up_datetime": "2023-03-01T08:00:00"}\n{"trip_id": "d"}')
    assert intake.look().admitted == []
    aged(f, 6)
    assert admitted_bytes(intake.admitted)["in-place.jsonl"] + intake.look().admitted[0].read_bytes() == (
        f.read_bytes().rpartition(b"\n")[0] + b"\n"
    )
    aged(f, 5 * TAIL_QUIET_FACTOR + 1)  # a last line with no newline, quiet long enough: complete
    assert len(intake.look().admitted) == 1
    assert admitted_bytes(intake.admitted) == {"in-place.jsonl": f.read_bytes()}
    # A driver killed and restarted knows what was admitted from the parts alone: nothing twice.
    again = Intake(land, tmp_path / "ck" / ADMITTED, settle_s=5)
    assert (again.look().admitted, again.pending()) == ([], 0)
    f.write_bytes(b'{"trip_id": "a"}\n')  # rewritten shorter: refused aloud, once, never half read
    assert "shrank" in again.look().refused["in-place.jsonl"]
    assert again.look().refused == {}


def test_files_landed_at_once_are_admitted_in_name_order_gz_read_and_the_rest_refused_aloud(tmp_path: Path) -> None:
    land = tmp_path / "land"
    land.mkdir()
    names = [f"trips-{i:06d}.jsonl" for i in range(24)]
    for i, name in enumerate(names):
        (land / name).write_text(json.dumps({"trip_id": str(i)}) + "\n")
    (land / "more.jsonl.gz").write_bytes(gzip.compress(b'{"trip_id": "z"}\n'))
    (land / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"trip_id": "y"}\n' * 100)[:-12])
    (land / "notes.txt").write_text("not events\n")
    (land / ".writing.jsonl").write_text('{"trip_id": "hidden"}\n')  # a producer's temporary name: never read
    now = time.time_ns() - 10**10
    for path in land.iterdir():  # one modification time for all, as a copy of many files gives
        os.utime(path, ns=(now, now))
    intake = Intake(land, tmp_path / "ck" / ADMITTED, settle_s=1)
    look = intake.look()
    landed = [p.name.split("-", 1)[1] for p in look.admitted]
    assert landed == sorted([*names, "more.jsonl.gz"])
    times = [p.stat().st_mtime_ns for p in look.admitted]
    assert times == sorted(set(times))  # the file source takes them in the same order
    assert gzip.decompress(look.admitted[landed.index("more.jsonl.gz")].read_bytes()) == b'{"trip_id": "z"}\n'
    assert set(look.refused) == {"cut.jsonl.gz", "notes.txt"}
    assert "not a whole gzip file" in look.refused["cut.jsonl.gz"]
    assert intake.look().refused == {}  # said once a run
    assert intake.pending() == 0


def test_an_idle_triggers_record_is_not_taken_for_the_batch_that_follows() -> None:
    """Spark's records, as a stream idle for ten seconds leaves them: an idle trigger's record bears the next
    batch's id and none of its figures; the line of batch 2 is the record of batch 2 that ran."""
    ran = {"addBatch": 900, "triggerExecution": 1200, "latestOffset": 5}
    idle = {"latestOffset": 3, "triggerExecution": 10}
    records = [
        {"batchId": 1, "durationMs": ran, "stateOperators": []},
        {"batchId": 2, "durationMs": idle, "stateOperators": []},
        {"batchId": 2, "durationMs": ran, "stateOperators": [{"customMetrics": {"numDroppedDuplicateRows": 5}}]},
    ]
    assert batch_records(records, 2, {1: 10}) == []  # batch 2 not written yet
    [record] = batch_records(records, 2, {1: 10, 2: 500})
    assert record["durationMs"] is ran
    assert record["stateOperators"][0]["customMetrics"]["numDroppedDuplicateRows"] == 5


def test_a_line_that_is_not_utf8_is_quarantined_readable_by_pandas_and_duckdb(
    champions: Champions, trips: pa.Table, tmp_path: Path
) -> None:
    batch = as_batch(trips.slice(0, 3))
    broken = pa.array([b'{"trip_id": "\xff\xfe"}', *[r.as_py().encode() for r in batch.column(RAW)[1:]]])
    batch = batch.set_column(0, RAW, broken.view(pa.string()))  # as the JVM hands it over: bytes, unchecked
    reason = pa.array([UNREADABLE_LINE, None, None], pa.string())
    batch = batch.set_column(batch.schema.get_field_index(REASON), REASON, reason)
    Sink(lambda: champions, ParquetWriter(tmp_path)).write(batch, 0)
    quarantined = pd.read_parquet(tmp_path / QUARANTINE / "batch-00000000.parquet")
    assert quarantined[RAW].tolist() == ['{"trip_id": "\\xff\\xfe"}']
    found = duckdb.sql(f"SELECT raw_line, reason FROM '{tmp_path / QUARANTINE}/*.parquet'").fetchall()
    assert found == [('{"trip_id": "\\xff\\xfe"}', UNREADABLE_LINE)]


def test_a_stream_following_the_alias_scores_with_the_new_version_from_the_next_batch(
    pretrip_store: Settings, trips: pa.Table, tmp_path: Path
) -> None:
    """Without --model the stream follows the champion aliases (`ModelHolder.latest`, asked once a batch): a
    moved alias is used from the next batch on, and each row carries the version that scored it."""
    holder = ModelHolder(pretrip_store)
    holder.start()
    try:
        sink = Sink(holder.latest, ParquetWriter(tmp_path))
        sink.write(as_batch(trips.slice(0, 20)), 0)
        client = MlflowClient(str(pretrip_store.mlflow_tracking_uri))
        old = client.get_model_version_by_alias(MODEL_NAME, PRETRIP_CHAMPION)
        new = client.create_model_version(MODEL_NAME, old.source, old.run_id)  # a retrained champion, say
        client.set_registered_model_alias(MODEL_NAME, PRETRIP_CHAMPION, new.version)
        sink.write(as_batch(trips.slice(20, 20)), 1)
    finally:
        holder.close()
    versions = {
        n: pd.read_parquet(tmp_path / PREDICTIONS / f"batch-{n:08d}.parquet")[["model_version", "model_alias"]]
        for n in (0, 1)
    }
    assert versions[0].drop_duplicates().values.tolist() == [[str(old.version), PRETRIP_CHAMPION]]
    assert versions[1].drop_duplicates().values.tolist() == [[str(new.version), PRETRIP_CHAMPION]]


def test_a_new_checkpoint_on_an_old_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "land").mkdir()
    land, out, first = tmp_path / "land", tmp_path / "out", tmp_path / "ck"
    check_folders(land, out, first)
    (out / PREDICTIONS).mkdir()
    (out / PREDICTIONS / "batch-00000000.parquet").write_bytes(b"a batch")
    check_folders(land, out, first)  # its own checkpoint resumes
    shutil.rmtree(first)  # deleted: a new checkpoint at the same place is another stream
    for checkpoint in (first, tmp_path / "ck2"):
        with pytest.raises(BadInputError, match="written by another checkpoint"):
            check_folders(land, out, checkpoint)
    (out / MANIFEST).unlink()  # an output that names no checkpoint, with batches in it
    with pytest.raises(BadInputError, match="holds batches of a stream"):
        check_folders(land, out, tmp_path / "ck3")


def test_a_checkpoint_resumes_only_with_the_sink_it_started_with(tmp_path: Path) -> None:
    """A stream that wrote files and is resumed with --to (or the reverse) would split its predictions, and a
    batch run again after a crash would land in the second place: refused, naming both."""
    (tmp_path / "land").mkdir()
    land, out, checkpoint = tmp_path / "land", tmp_path / "out", tmp_path / "ck"
    check_folders(land, out, checkpoint)
    check_folders(land, out, checkpoint, sink_of(None))  # as it started
    with pytest.raises(BadInputError, match="writes its predictions to files, not table trips_scored"):
        check_folders(land, out, checkpoint, sink_of("trips_scored"))
    land2, out2, checkpoint2 = tmp_path / "land2", tmp_path / "out2", tmp_path / "ck2"
    land2.mkdir()
    check_folders(land2, out2, checkpoint2, sink_of("trips_scored"))
    check_folders(land2, out2, checkpoint2, sink_of("trips_scored"))
    with pytest.raises(BadInputError, match="writes its predictions to table trips_scored, not files"):
        check_folders(land2, out2, checkpoint2)


def test_hostile_landing_every_trip_once_and_the_counts_are_the_files(
    spark_settings: Settings, trips: pa.Table, tmp_path: Path
) -> None:
    """Files copied at once (one modification time), a day of late events landed last, a `.gz` file, a line
    that is not UTF-8, a redelivery: every trip_id is predicted or quarantined once, none is dropped as late,
    and the summary's counts are what the files held."""
    late_rows = 60
    earlier = pc.subtract(trips.column(s.PICKUP).slice(0, late_rows), pa.scalar(timedelta(days=1)))
    late = trips.slice(0, late_rows).set_column(trips.schema.get_field_index(s.PICKUP), s.PICKUP, earlier)
    on_time = trips.slice(late_rows)
    land = tmp_path / "land"
    files = replay(on_time, tmp_path / "staging", "on-time", 20)
    compressed = files[3].with_name(files[3].name + ".gz")
    compressed.write_bytes(gzip.compress(files[3].read_bytes()))
    files[3].unlink()
    land.mkdir()
    moment = time.time_ns()
    for f in [*files[:3], compressed, *files[4:]]:  # copied in one go: one modification time
        target = land / f.name
        shutil.copyfile(f, target)
        os.utime(target, ns=(moment, moment))
    [late_file] = replay(late, tmp_path / "late", "late", late_rows)
    bad = [*bad_lines(trips.column(s.PICKUP)[-1].as_py().isoformat()), ('{"trip_id": "\\xff\\xfe"}', UNREADABLE_LINE)]
    text = "".join(line + "\n" for line, _ in bad[:-1]).encode() + b'{"trip_id": "\xff\xfe"}\n'
    redelivered = late_file.read_text().splitlines(keepends=True)[-5:]
    for name, data in (("late.jsonl", late_file.read_bytes()), ("bad.jsonl", text)):
        (land / name).write_bytes(data)
        later_than(land / name, moment)
    (land / "again.jsonl").write_text("".join(redelivered))
    later_than(land / "again.jsonl", (land / "late.jsonl").stat().st_mtime_ns)

    scorer = load(spark_settings, "models:/taxi-duration/1", spark_settings.scratch_dir())
    steps: list[Any] = []
    finished = run(
        spark_settings, lambda: Champions([scorer]), land, tmp_path / "out", tmp_path / "ck", True, steps.append
    )
    predictions, quarantine = outputs(tmp_path / "out")
    assert_exactly_once(spark_settings, pa.concat_tables([on_time, late]), bad, predictions, quarantine)
    events = EVENTS + len(bad) + len(redelivered)
    assert (finished.read, finished.duplicates, finished.late, finished.backlog) == (events, 5, 0, 0)
    assert finished.counts.predicted + sum(finished.counts.quarantined.values()) == events - 5
    assert sum(step.rows_in for step in steps) == events  # each batch's line from its own record
    assert (finished.refused, finished.stopped) == ({}, False)


def test_sigterm_ends_a_live_stream_with_its_summary_and_exit_0(
    registry: Settings, trips: pa.Table, tmp_path: Path
) -> None:
    replay(trips, tmp_path / "land", "trips", 100)
    stream = Stream(registry, tmp_path, "--trigger-seconds", "0.5")
    wait_for(lambda: batch_files(tmp_path) > 0, stream)
    stream.process.send_signal(signal.SIGTERM)  # to the command alone, as a service manager's stop
    _, errors = stream.process.communicate(timeout=120)
    assert stream.process.returncode == 0, errors
    summary = errors.strip().splitlines()[-1]
    predictions, quarantine = outputs(tmp_path / "out")
    assert summary.startswith("stopped: ")
    assert f"{len(predictions):,} predicted, {len(quarantine):,} quarantined" in summary
