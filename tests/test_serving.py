"""The prediction API, as `taxi-duration serve` runs it: a real server process on loopback, a real MLflow
registry behind it, real HTTP requests. What the Dockerfile starts is the command these tests start."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient

from taxi_duration.core.atomic import run_tag
from taxi_duration.core.config import CHAMPION, PRETRIP_CHAMPION, SCRATCH_PREFIX, Settings
from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import parse_months
from taxi_duration.ingest import postgres
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ingest.synth import generate
from taxi_duration.monitor.scorecard import score_files
from taxi_duration.ops.bench.serve import worst_case_trips
from taxi_duration.registry import tracking
from taxi_duration.serve.api import DOCS_ASSETS, MAX_BATCH
from taxi_duration.serve.batch import score_table
from taxi_duration.serve.bundle import INPUT_COLUMNS, SIGNATURE
from taxi_duration.serve.holder import wait_ready
from taxi_duration.serve.scorer import load
from taxi_duration.train.job import train
from tests.conftest import (
    ADMIN_KEY,
    API_KEY,
    POINTS,
    POSTGRES_URL_ENV,
    SPLIT,
    TRIP,
    Holding,
    assert_served_and_refused_counted,
    store_settings,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A store whose champion is a small LightGBM model trained on `with_distance`."""
    root = tmp_path_factory.mktemp("registry")
    generate(24_000, parse_months("2023-01..2023-03"), root / "raw", seed=4)
    settings = store_settings(root)
    train(settings, check_all(discover([root / "raw"])), SPLIT, "with_distance")
    return settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dockerfile_command() -> list[str]:
    """The command the image runs (its CMD, in exec form)."""
    line = next(x for x in (ROOT / "Dockerfile").read_text().splitlines() if x.startswith("CMD "))
    return list(json.loads(line.removeprefix("CMD ")))


class Server:
    """`taxi-duration serve` in its own process, as the image starts it, on a free loopback port."""

    def __init__(self, settings: Settings, *options: str, **env: str) -> None:
        self.port = free_port()
        command = dockerfile_command()
        args = [*command[2:], "--host", "127.0.0.1", "--port", str(self.port), "--poll-seconds", "0.2", *options]
        environment = {**os.environ, "MLFLOW_TRACKING_URI": str(settings.mlflow_tracking_uri), **env}
        environment["TAXI_DURATION_DATA_DIR"] = str(settings.data_dir)
        executable = str(Path(sys.executable).with_name(command[0]))
        self.process = subprocess.Popen([executable, command[1], *args], env=environment, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            wait_ready(self.url, timeout_s=90, alive=lambda: self.process.poll() is None)
        except TimeoutError:
            self.stop()
            raise

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=30, **kwargs)

    def stop(self) -> str:
        self.process.terminate()
        _, err = self.process.communicate(timeout=30)
        return err.decode()


@pytest.fixture(scope="module")
def server(registry: Settings) -> Iterator[Server]:
    running = Server(registry)  # zones from coordinates with the packaged shapes
    yield running
    running.stop()


def test_the_image_runs_the_command_the_tests_run() -> None:
    command = dockerfile_command()
    assert command[:2] == ["taxi-duration", "serve"]
    assert command[2:] == ["--host", "0.0.0.0", "--port", "8000"]
    text = (ROOT / "Dockerfile").read_text()
    assert "USER " in text
    assert "HEALTHCHECK" in text


def test_predict_answers_minutes_an_interval_and_the_version(server: Server, registry: Settings) -> None:
    answer = server.post("/predict", TRIP)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_version"], body["model_alias"], body["feature_set"]) == ("1", "champion", "with_distance")
    assert body["interval"]["p10"] < body["duration_minutes"] < body["interval"]["p90"]
    tracking.connect(registry)
    pyfunc = mlflow.pyfunc.load_model("models:/taxi-duration/1")
    frame = pd.DataFrame([{**TRIP, "pickup_datetime": pd.Timestamp(TRIP["pickup_datetime"])}])
    assert body["duration_minutes"] == pytest.approx(float(pyfunc.predict(frame)[0]), abs=0.005)
    assert all(round(v, 2) == v for v in (body["duration_minutes"], *body["interval"].values()))  # to the hundredth


def test_the_api_predict_evaluate_and_the_pyfunc_give_the_same_minutes(
    server: Server, registry: Settings, tmp_path: Path
) -> None:
    """The one road: every caller's minutes for the same trips agree, across the fast and the batch path."""
    uri = "models:/taxi-duration/1"
    test_month = next((registry.data_dir / "raw").glob("*2023-03*"))
    result = score_files(registry, uri, check_all(discover([test_month])), predictions_path=tmp_path / "p.parquet")
    scored = pq.read_table(tmp_path / "p.parquet").to_pandas()
    assert len(scored) == result["data"]["scored_rows"] > 1_000  # evaluate scored them in one batch evaluation
    trips = scored.head(200)
    expected = trips["duration_minutes"].to_numpy()
    inputs = trips[list(INPUT_COLUMNS)]

    pyfunc = mlflow.pyfunc.load_model(uri)  # 200 trips: the fast path
    assert np.abs(pyfunc.predict(inputs) - expected).max() < 1e-6

    body = [
        {k: (v.isoformat() if k == "pickup_datetime" else v) for k, v in row.items() if not pd.isna(v)}
        for row in inputs.to_dict("records")
    ]
    answer = server.post("/predict/batch", {"trips": body}).json()
    assert answer["model_version"] == "1"
    minutes = np.array([p["duration_minutes"] for p in answer["predictions"]])
    assert np.abs(minutes - expected).max() <= 0.005 + 1e-9  # the API answers to the hundredth

    if url := os.environ.get(POSTGRES_URL_ENV):  # `predict`, where CI has PostgreSQL
        postgres.write_table(url, "road_trips", pa.Table.from_pandas(inputs.assign(trip_id=range(200))), replace=True)
        scorer = load(registry, uri, tmp_path)
        assert score_table(url, scorer, "road_trips", "trip_id", "road_predictions").predicted == 200
        stored = postgres.read_table(url, "road_predictions").to_pandas().sort_values("trip_id")
        assert np.abs(stored["duration_minutes"].to_numpy() - expected).max() < 1e-6


@pytest.mark.parametrize("pickup", ["lpep_pickup_datetime", "tpep_pickup_datetime"])
def test_tlc_column_names_give_the_same_answer(server: Server, pickup: str) -> None:
    tlc = {pickup: "2023-03-14 08:30:00", "PULocationID": 74, "DOLocationID": 236, "trip_distance": 2.4}
    tlc |= {"passenger_count": 1, "VendorID": None, "fare_amount": 12.5}  # the rest of a TLC record is ignored
    tlc |= {"lpep_dropoff_datetime": "2023-03-14 08:50:00", "tip_amount": 2.0, "store_and_fwd_flag": "N"}
    assert server.post("/predict", tlc).json() == server.post("/predict", TRIP).json()


def test_a_batch_answers_in_order_what_single_calls_answer(server: Server) -> None:
    trips = [TRIP, {**TRIP, "do_location_id": 132, "trip_distance": 15.0}, {**TRIP, "pu_location_id": 1}]
    batch = server.post("/predict/batch", {"trips": trips})
    assert batch.status_code == 200, batch.text
    singles = [server.post("/predict", t).json() for t in trips]
    assert batch.json()["predictions"] == singles


# A few refusals over real HTTP, as a client meets them; every case, and why, is in `test_api.py` (in process).
LIVE_BAD_REQUESTS = [
    ({**TRIP, "pu_location_id": 999}, "pu_location_id", "less than or equal to 263"),
    ({**TRIP, "pickup_datetime": "2099-01-01T10:00:00"}, "pickup_datetime", "a year from today"),
    ({k: v for k, v in TRIP.items() if k != "trip_distance"}, "trip_distance", "uses the metered distance"),
    ({**TRIP, "x" * 900_000: 1}, "x" * 64 + "... (900,000 characters)", "unknown field"),
]


@pytest.mark.parametrize(("body", "field", "message"), LIVE_BAD_REQUESTS)
def test_bad_trips_are_422_naming_the_field(server: Server, body: Any, field: str, message: str) -> None:
    answer = server.post("/predict", body)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["problems"]
    assert any(p["field"] == field and message in p["message"] for p in problems), problems
    assert len(answer.content) < 4_000  # the answer names the problem; it does not echo the request


def test_coordinates_stand_in_for_zones_and_refine_the_distance(server: Server) -> None:
    kaggle = {k: v for k, v in TRIP.items() if not k.endswith("location_id")} | POINTS
    answer = server.post("/predict", kaggle)
    assert answer.status_code == 200, answer.text
    zoned = {**kaggle, "pu_location_id": 230, "do_location_id": 239}  # the zones the shapes give
    assert server.post("/predict", zoned).json() == answer.json()
    batch = server.post("/predict/batch", {"trips": [TRIP, kaggle, zoned]}).json()["predictions"]
    assert batch[1] == batch[2] == answer.json()


def test_malformed_json_and_non_finite_numbers_are_422(server: Server) -> None:
    as_json = {"Content-Type": "application/json"}
    broken = httpx.post(f"{server.url}/predict", content=b'{"pickup_datetime": ', headers=as_json, timeout=10)
    assert broken.status_code == 422
    assert "not valid JSON" in broken.json()["problems"][0]["message"]
    nan = json.dumps({**TRIP, "trip_distance": float("nan")})
    assert httpx.post(f"{server.url}/predict", content=nan, headers=as_json, timeout=10).status_code == 422
    binary = httpx.post(f"{server.url}/predict", content=b"\xc3\x28\xa0\xa1", headers=as_json, timeout=10)
    assert binary.status_code == 400
    assert "UTF-8" in binary.json()["error"]
    untyped = httpx.post(f"{server.url}/predict", content=json.dumps(TRIP), timeout=10)
    assert untyped.status_code == 422
    assert "Content-Type: application/json" in untyped.json()["error"]


def test_huge_bodies_are_refused_as_they_come(server: Server) -> None:
    huge = httpx.post(f"{server.url}/predict", content=b"x" * (2 << 20), timeout=30)
    assert huge.status_code == 413
    assert "bytes" in huge.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for _ in range(64):
            yield b" " * 65_536

    streamed = httpx.post(f"{server.url}/predict", content=chunks(), timeout=30)
    assert streamed.status_code == 413


def test_health_ready_model_and_metrics(server: Server) -> None:
    assert server.get("/health").json() == {"status": "ok"}
    assert server.get("/ready").json() == {"status": "ready", "model_version": "1"}
    model = server.get("/model").json()
    assert (model["version"], model["feature_set"], model["train_months"]) == ("1", "with_distance", ["2023-01"])
    assert model["alias"] == "champion"
    assert [m["version"] for m in model["served"]] == ["1"]  # one champion: one model served
    assert model["served_by"] == "native (lightgbm)"
    assert model["validation_metrics"]["rmse"] > 0
    server.post("/predict", TRIP)
    server.post("/predict", {**TRIP, "pu_location_id": 999})
    metrics = server.get("/metrics").text
    assert_served_and_refused_counted(metrics)


def test_head_answers_health_and_ready(server: Server) -> None:
    for path in ("/health", "/ready"):
        answer = httpx.head(f"{server.url}{path}", timeout=10)
        assert answer.status_code == 200, path
        assert answer.content == b""


def test_metrics_label_routes_not_raw_paths(server: Server) -> None:
    for i in range(300):
        httpx.request(["GET", "POST", "DELETE"][i % 3], f"{server.url}/x{i}/{os.urandom(6).hex()}", timeout=10)
    server.get("/docs-assets/swagger-ui.css")
    server.get(f"/docs-assets/{os.urandom(6).hex()}.js")  # a 404 under a mount counts as the mount
    httpx.post(f"{server.url}/predict", content=b"x" * (2 << 20), timeout=30)  # refused before routing (413)
    metrics = server.get("/metrics").text
    endpoints = set(re.findall(r'taxi_duration_requests_total\{endpoint="([^"]*)"', metrics))
    assert {"unmatched", DOCS_ASSETS} <= endpoints  # Swagger's own files count as their mount, not as unmatched
    assert endpoints <= {"unmatched", "/predict", "/predict/batch", "/health", "/ready", "/model", "/metrics"} | {
        "/admin/reload",
        "/docs",
        "/openapi.json",
        DOCS_ASSETS,
    }
    assert "/x1" not in metrics
    assert len(metrics) < 50_000


def test_a_worst_case_batch_never_holds_up_health(server: Server, registry: Settings) -> None:
    """1,000 trips the server has never seen (any hour of any day since 2009, odd distances, rare vendors,
    some inside the store's window), while /health is called back to back."""
    first, last = datetime(2023, 1, 1), datetime(2023, 2, 1)  # the registry's store window (train 2023-01)
    trips = worst_case_trips(MAX_BATCH, seed=7, window=(first, last))
    answers: list[httpx.Response] = []
    batch = threading.Thread(target=lambda: answers.append(server.post("/predict/batch", {"trips": trips})))
    health: list[float] = []
    with httpx.Client(timeout=30) as client:
        client.get(f"{server.url}/health")  # the connection is open before the batch starts
        batch.start()
        while batch.is_alive():
            start = time.perf_counter()
            assert client.get(f"{server.url}/health").status_code == 200
            health.append(time.perf_counter() - start)
        batch.join()
    assert answers[0].status_code == 200, answers[0].text
    assert len(answers[0].json()["predictions"]) == MAX_BATCH
    assert health
    # Before, the batch computed each new hour's features on the event loop: /health waited for all of it
    # (33 s for 50 new hours). The bound is for a busy shared machine; idle, every call takes a few ms.
    assert sorted(health)[int(len(health) * 0.9)] < 0.1, health
    assert max(health) < 0.5, health


def test_openapi_docs_with_examples(server: Server) -> None:
    page = server.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text)  # works offline: nothing from a CDN
    assets = re.findall(r'(?:href|src)="([^"]+)"', page.text)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    assert all(server.get(a).status_code == 200 for a in assets), assets
    spec = server.get("/openapi.json").json()
    examples = spec["components"]["schemas"]["Trip"]["examples"]
    assert any("PULocationID" in e for e in examples)
    assert any("pu_location_id" in e for e in examples)
    assert {"/predict", "/predict/batch", "/health", "/ready", "/model", "/metrics"} <= set(spec["paths"])
    operations = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(operations) == len(set(operations))


def test_keys_guard_predictions_and_admin_calls(registry: Settings) -> None:
    shapeless = {"TAXI_DURATION_ZONE_SHAPES": str(registry.data_dir / "no-shapes.zip")}
    keyed = Server(registry, TAXI_DURATION_API_KEY=API_KEY, TAXI_DURATION_ADMIN_KEY=ADMIN_KEY, **shapeless)
    try:
        kaggle = {k: v for k, v in TRIP.items() if not k.endswith("location_id")} | POINTS
        refused = keyed.post("/predict", kaggle, headers={"X-API-Key": API_KEY})
        assert refused.status_code == 422
        assert "no zone shapes" in refused.json()["error"]
        assert keyed.post("/predict", TRIP).status_code == 401
        assert keyed.post("/predict", TRIP, headers={"X-API-Key": "wrong"}).status_code == 401
        assert keyed.post("/predict", TRIP, headers={"X-API-Key": API_KEY}).status_code == 200
        assert keyed.post("/admin/reload", headers={"X-API-Key": API_KEY}).status_code == 401
        assert keyed.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY}).json()["outcome"] == "unchanged"
        for path in ("/model", "/metrics"):  # what the service serves and to whom is for its clients
            assert keyed.get(path).status_code == 401, path
            assert keyed.get(path, headers={"X-API-Key": API_KEY}).status_code == 200, path
        assert keyed.get("/health").status_code == 200  # probes carry no key
        assert keyed.get("/ready").status_code == 200
    finally:
        log = keyed.stop()
    assert API_KEY not in log
    assert ADMIN_KEY not in log


def _copy(work: Path, version: str, breaks: str | None = None) -> str:
    """Register a version's bundle again as a new version: as it is (a new champion to move an alias to), or
    broken one way: `nan` weights (it loads and predicts nonsense), or `old` (no native export, as models
    trained before it existed)."""
    bundle = Path(mlflow.artifacts.download_artifacts(f"models:/taxi-duration/{version}", dst_path=str(work)))
    native = bundle / "artifacts" / "bundle" / "native"
    if breaks == "nan":
        spec = json.loads((native / "native.json").read_text())
        spec["parts"][0]["weight"] = float("nan")
        (native / "native.json").write_text(json.dumps(spec))
    elif breaks == "old":
        shutil.rmtree(native)
    entry = ROOT / "src" / "taxi_duration" / "serve" / "pyfunc_entry.py"
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(entry),
            artifacts={"bundle": str(bundle / "artifacts" / "bundle")},
            signature=SIGNATURE,
            input_example=mlflow.models.Model.load(bundle).load_input_example(str(bundle)),
        )
    return str(mlflow.register_model(info.model_uri, tracking.MODEL_NAME).version)


@pytest.fixture(scope="module")
def pretrip(registry: Settings) -> str:
    """A pretrip model trained on the registry's trips: by the champion rule, the first `champion-pretrip`
    (it never competes with the with_distance champion, which keeps its alias). Its version."""
    outcome = train(registry, check_all(discover([registry.data_dir / "raw"])), SPLIT, "pretrip")
    assert (outcome.decision.promoted, outcome.decision.alias) == (True, PRETRIP_CHAMPION)
    return outcome.decision.version


NO_DISTANCE = {k: v for k, v in TRIP.items() if k != "trip_distance"}


def _served_by(answer: httpx.Response) -> tuple[str, str, str]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return body["model_alias"], body["model_version"], body["feature_set"]


def _traffic(url: str, stop: threading.Event, answers: list[tuple[bool, int, str | None]]) -> threading.Thread:
    """A client calling /predict back to back, with and without a distance in turn, until `stop`:
    (distance given, status, the alias that answered)."""

    def run() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                for trip in (TRIP, NO_DISTANCE):
                    answer = client.post(f"{url}/predict", json=trip)
                    answers.append((trip is TRIP, answer.status_code, answer.json().get("model_alias")))

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_pretrip_champion_is_served_beside_the_champion_and_each_moves_without_downtime(
    registry: Settings, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    live = Server(registry, TAXI_DURATION_ADMIN_KEY=ADMIN_KEY)
    admin = {"X-API-Key": ADMIN_KEY}
    aliases = MlflowClient(registry.mlflow_tracking_uri)
    try:
        assert live.post("/predict", NO_DISTANCE).status_code == 422  # one champion, with_distance: as it was
        tracking.connect(registry)
        answers: list[tuple[bool, int, str | None]] = []
        stop = threading.Event()
        load = _traffic(live.url, stop, answers)
        new = request.getfixturevalue("pretrip")  # trained now, while the server serves: a second alias appears
        reloaded = live.post("/admin/reload", headers=admin).json()
        stop.set()
        load.join()
        assert reloaded["outcome"] in {"loaded", "unchanged"}  # unchanged: the poller loaded it first
        assert {(status, alias) for distance, status, alias in answers if distance} == {(200, CHAMPION)}
        assert {status for distance, status, _ in answers if not distance} <= {200, 422}

        # Two champions: each trip goes to the one that can answer it, and the answer names it.
        assert _served_by(live.post("/predict", TRIP)) == (CHAMPION, "1", "with_distance")
        assert _served_by(live.post("/predict", NO_DISTANCE)) == (PRETRIP_CHAMPION, new, "pretrip")
        asked = live.post("/predict", TRIP, params={"feature_set": "pretrip"})  # a client may choose
        assert _served_by(asked) == (PRETRIP_CHAMPION, new, "pretrip")
        refused = live.post("/predict", NO_DISTANCE, params={"feature_set": "with_distance"})
        assert refused.status_code == 422
        assert "uses the metered distance" in refused.json()["problems"][0]["message"]
        mixed = [TRIP, NO_DISTANCE, {**TRIP, "do_location_id": 132}]
        batch = live.post("/predict/batch", {"trips": mixed}).json()
        assert batch["predictions"] == [live.post("/predict", t).json() for t in mixed]
        assert batch["model_version"] == f"1,{new}"
        model = live.get("/model").json()
        assert (model["alias"], model["version"]) == (CHAMPION, "1")  # trips with a distance go there
        assert [(m["alias"], m["feature_set"]) for m in model["served"]] == [
            (CHAMPION, "with_distance"),
            (PRETRIP_CHAMPION, "pretrip"),
        ]

        # Both aliases move, under traffic of both kinds of trips: every answer a 200.
        moved = {CHAMPION: _copy(tmp_path / "champion", "1"), PRETRIP_CHAMPION: _copy(tmp_path / "pretrip", new)}
        answers.clear()
        stop.clear()
        load = _traffic(live.url, stop, answers)
        for alias, version in moved.items():
            aliases.set_registered_model_alias("taxi-duration", alias, version)
        reloaded = live.post("/admin/reload", headers=admin).json()
        stop.set()
        load.join()
        assert reloaded["outcome"] in {"loaded", "unchanged"}
        assert reloaded["model_version"] == moved[CHAMPION]
        assert answers
        assert {status for _, status, _ in answers} == {200}
        assert _served_by(live.post("/predict", TRIP)) == (CHAMPION, moved[CHAMPION], "with_distance")
        assert _served_by(live.post("/predict", NO_DISTANCE)) == (PRETRIP_CHAMPION, moved[PRETRIP_CHAMPION], "pretrip")

        for breaks, reason in (("nan", "failed its check"), ("old", "predates the native export")):
            bad = _copy(tmp_path / breaks, "1", breaks)
            aliases.set_registered_model_alias("taxi-duration", CHAMPION, bad)
            refused = live.post("/admin/reload", headers=admin)
            assert refused.status_code == 409
            error = refused.json()["error"]
            assert f"refused version {bad}: " in error
            assert reason in error
            assert error.endswith(f"still serving version {moved[CHAMPION]}")
            model = live.get("/model").json()
            assert (model["version"], model["reload"]["outcome"]) == (moved[CHAMPION], "failed")
            assert live.post("/predict", TRIP).json()["model_version"] == moved[CHAMPION]
            assert live.post("/predict", NO_DISTANCE).json()["model_version"] == moved[PRETRIP_CHAMPION]
        old_format = mlflow.pyfunc.load_model(f"models:/taxi-duration/{bad}")  # loads, but refuses to predict
        frame = pd.DataFrame([{**TRIP, "pickup_datetime": pd.Timestamp(TRIP["pickup_datetime"])}])
        with pytest.raises(UsageError, match="predates the native export; train it again"):
            old_format.predict(frame)
    finally:
        live.stop()


def test_a_lone_pretrip_champion_answers_every_trip(registry: Settings, pretrip: str) -> None:
    """With no with_distance champion, the pretrip one serves alone, as a lone champion always has: every trip
    goes to it, and asking for the other feature set is a clear 422."""
    aliases = MlflowClient(registry.mlflow_tracking_uri)
    aliases.delete_registered_model_alias("taxi-duration", CHAMPION)
    version = str(aliases.get_model_version_by_alias("taxi-duration", PRETRIP_CHAMPION).version)
    alone = Server(registry)
    try:
        for trip in (TRIP, NO_DISTANCE):
            assert _served_by(alone.post("/predict", trip)) == (PRETRIP_CHAMPION, version, "pretrip")
        asked = alone.post("/predict", TRIP, params={"feature_set": "with_distance"})
        assert asked.status_code == 422
        assert asked.json()["error"] == "this server has no with_distance model: it serves pretrip"
        assert alone.get("/ready").json()["model_version"] == version
    finally:
        alone.stop()


def test_a_stopped_server_leaves_no_folders_and_a_new_one_sweeps_dead_ones(registry: Settings) -> None:
    runs = registry.data_dir / "tmp"
    killed = Holding(
        f"from taxi_duration.core.config import load_settings; print(load_settings(data_dir={str(registry.data_dir)!r})"
        ".scratch_dir())"
    )
    dead = Path(killed.said)  # a killed server's folder, with its model inside
    (dead / "serving-x" / "v1-model").mkdir(parents=True)
    killed.kill()
    before = set(runs.iterdir())
    running = Server(registry, "--model", "models:/taxi-duration/1")  # the champion may be a broken one by now
    try:
        assert running.post("/predict", TRIP).json()["model_alias"] is None  # a pinned version, no alias
        assert not dead.exists()
        (own,) = set(runs.iterdir()) - before
        assert own.name == f"{SCRATCH_PREFIX}{run_tag(running.process.pid)}"
        assert any(own.glob("serving-*/v1-*")), "the server's model is downloaded into its own run folder"
        assert registry.scratch_dir() in before, "this test process's own run folder is left alone"
    finally:
        said = running.stop()  # SIGTERM, as an orchestrator stops it
    assert not own.exists()
    assert running.process.returncode == 0, said  # a requested stop is no failure (uvicorn's own exit is 143)
    assert "serve: stopped by SIGTERM, every request in flight answered" in said


def test_serving_with_no_champion_is_a_clear_error(tmp_path: Path) -> None:
    settings = store_settings(tmp_path)
    env = {**os.environ, "MLFLOW_TRACKING_URI": str(settings.mlflow_tracking_uri)}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("taxi-duration")), "serve", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "no version of 'taxi-duration' has the alias 'champion'" in result.stderr
    assert "train one first (`taxi-duration run`), or pass --model" in result.stderr  # what to do about it


def test_interval_covers_most_validation_trips(registry: Settings) -> None:
    runs = MlflowClient(registry.mlflow_tracking_uri).search_runs(
        [MlflowClient(registry.mlflow_tracking_uri).get_experiment_by_name("taxi-duration").experiment_id]
    )
    coverage = [r.data.metrics["test_interval_coverage"] for r in runs if "test_interval_coverage" in r.data.metrics]
    assert coverage
    assert all(0.7 < c < 0.9 for c in coverage)
