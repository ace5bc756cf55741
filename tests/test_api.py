"""The API in process: FastAPI's TestClient over a small LightGBM bundle trained here in seconds (no MLflow,
no server process). Every refusal a request can meet, the OpenAPI schema, the refusal table, and how the
model behaves; `test_serving.py` proves the same app over real HTTP, as `taxi-duration serve` runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from taxi_duration.core import schema as s
from taxi_duration.core.config import CHAMPION, CHAMPION_MODELS, Engine, Settings, load_settings
from taxi_duration.core.months import parse_months
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import PU_BOROUGH, TARGET, TARGET_RANGE
from taxi_duration.geo.shapes import PACKAGED_SHAPES, load_index
from taxi_duration.ingest import validation
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ingest.synth import generate
from taxi_duration.serve import intervals
from taxi_duration.serve.api import MAX_BATCH, create_app
from taxi_duration.serve.api.errors import REFUSAL_OF, Refused, refusal_of
from taxi_duration.serve.api.schemas import PICKUP_RANGE
from taxi_duration.serve.bundle import META, NATIVE_DIR, STORE_DIR, Bundle, Meta
from taxi_duration.serve.holder import Champions, ModelHolder
from taxi_duration.serve.scorer import Scorer
from taxi_duration.train import local as train_local
from taxi_duration.train.dataset import prepare
from taxi_duration.train.export import from_sklearn
from tests.conftest import ADMIN_KEY, API_KEY, KAGGLE, POINTS, SPLIT, TRIP, assert_served_and_refused_counted

with warnings.catch_warnings():
    # Starlette's test client would rather run on `httpx2`, which the project does not install; on httpx it
    # works the same (the live tests in test_serving.py use httpx too).
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

AS_JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """A with_distance bundle as training writes it (meta, store, native export, interval), from a LightGBM
    model of 60 trees fitted on 2,000 synthetic trips: seconds, where the registry's training takes a minute."""
    root = tmp_path_factory.mktemp("api")
    generate(6_000, parse_months("2023-01..2023-03"), root / "raw", seed=4)
    runtime = Runtime.open(load_settings(data_dir=root), Engine.DUCKDB)
    try:
        prepared = prepare(runtime, check_all(discover([root / "raw"])), SPLIT, root / "work")
        train, validate = prepared.pandas("train"), prepared.pandas("validate")
    finally:
        runtime.close()
    pipeline = train_local.fit(train, "with_distance", n_estimators=60)
    interval = intervals.fit(validate[TARGET], train_local.predict(pipeline, validate), validate[PU_BOROUGH])
    meta = Meta(
        name="taxi-duration",
        kind="sklearn",
        feature_set="with_distance",
        train_months=[str(m) for m in SPLIT.train],
        validate_month=str(SPLIT.validate),
        store_version=prepared.store.manifest.version,
        target_range=TARGET_RANGE,
        global_mean=float(train[TARGET].mean()),
        interval=interval.to_json(),
    )
    path = root / "bundle"
    path.mkdir()
    (path / META).write_text(json.dumps(asdict(meta)))
    shutil.copytree(prepared.store.path, path / STORE_DIR)
    from_sklearn(pipeline).save(path / NATIVE_DIR)
    return Bundle.open(path)


@pytest.fixture(scope="module")
def scorer(bundle: Bundle) -> Scorer:
    """The bundle served as the champion, zones from coordinates by the packaged shapes."""
    return Scorer(bundle, "1", "models:/taxi-duration/1", zones=load_index(PACKAGED_SHAPES), alias=CHAMPION)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(data_dir=tmp_path_factory.mktemp("serving"))


def serving(settings: Settings, scorer: Scorer, **keys: str) -> Iterator[TestClient]:
    """A TestClient over the app, its holder serving `scorer` as the champion (started, as `serve` starts it)."""
    holder = ModelHolder(settings)
    holder.models = {CHAMPION_MODELS[0]: scorer}
    holder.current = Champions([scorer])
    with TestClient(create_app(holder, **keys)) as client:
        yield client


@pytest.fixture(scope="module")
def client(settings: Settings, scorer: Scorer) -> Iterator[TestClient]:
    yield from serving(settings, scorer)


@pytest.fixture(scope="module")
def keyed(settings: Settings, scorer: Scorer) -> Iterator[TestClient]:
    yield from serving(settings, scorer, api_key=API_KEY, admin_key=ADMIN_KEY)


def test_predict_answers_minutes_an_interval_and_the_model(client: TestClient, scorer: Scorer) -> None:
    answer = client.post("/predict", json=TRIP)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_version"], body["model_alias"], body["feature_set"]) == ("1", "champion", "with_distance")
    assert body["interval"]["p10"] < body["duration_minutes"] < body["interval"]["p90"]
    canonical = {**TRIP, s.PICKUP: datetime.fromisoformat(TRIP["pickup_datetime"])}
    scored = scorer.score([canonical])
    assert scored is not None
    assert body["duration_minutes"] == round(float(scored.minutes[0]), 2)
    batch = client.post("/predict/batch", json={"trips": [TRIP, {**TRIP, "trip_distance": 9.0}]})
    assert batch.status_code == 200, batch.text
    assert batch.json()["predictions"][0] == body
    assert batch.json()["model_version"] == "1"


# (body, the field named, what its message says): every way a trip's JSON can be wrong before the model sees it.
BAD_REQUESTS = [
    ({**TRIP, "pu_location_id": 999}, "pu_location_id", "less than or equal to 263"),
    # The TLC's "unknown" and "outside NYC": training quarantines them (validation.KNOWN_ZONES), so does the API.
    ({**TRIP, "pu_location_id": 264}, "pu_location_id", "less than or equal to 263"),
    ({**TRIP, "do_location_id": 265}, "do_location_id", "less than or equal to 263"),
    ({**TRIP, "do_location_id": 0}, "do_location_id", "greater than or equal to 1"),
    ({**TRIP, "pickup_datetime": "2099-01-01T10:00:00"}, "pickup_datetime", "a year from today"),
    ({**TRIP, "pickup_datetime": "2008-12-31T23:59:59"}, "pickup_datetime", PICKUP_RANGE),
    ({**TRIP, "pickup_datetime": "yesterday"}, "pickup_datetime", "datetime"),
    # Found by schemathesis: converting these to New York time overflows.
    ({**TRIP, "pickup_datetime": "0001-01-01T01:00:01Z"}, "pickup_datetime", "a year from today"),
    ({**TRIP, "pickup_datetime": "0001-01-01T00:00:00+01:00"}, "pickup_datetime", "a year from today"),
    ({**TRIP, "passenger_count": -2}, "passenger_count", "greater than or equal to 0"),
    ({**TRIP, "passenger_count": 10}, "passenger_count", "less than or equal to 9"),
    ({**TRIP, "passenger_count": "two"}, "passenger_count", "valid integer"),
    ({**TRIP, "passenger_count": 1.5}, "passenger_count", "valid integer"),
    ({**TRIP, "trip_distance": -1.0}, "trip_distance", "greater than 0"),
    ({**TRIP, "trip_distance": 0}, "trip_distance", "greater than 0"),
    ({**TRIP, "trip_distance": 250_000.0}, "trip_distance", "less than or equal to 100"),
    ({**TRIP, "trip_distance": "far"}, "trip_distance", "valid number"),
    ({**TRIP, "pu_location_id": [74]}, "pu_location_id", "valid integer"),
    ({k: v for k, v in TRIP.items() if k != "pickup_datetime"}, "pickup_datetime", "Field required"),
    ({k: v for k, v in TRIP.items() if k != "trip_distance"}, "trip_distance", "uses the metered distance"),
    ([TRIP], "body", "valid dictionary"),
    ("74", "body", "valid dictionary"),
    ({k: v for k, v in TRIP.items() if k != "pu_location_id"}, "body", "unless the trip gives all four coordinates"),
    ({**TRIP, **POINTS, "pickup_latitude": 140.0}, "pickup_latitude", "less than or equal to 90"),
    ({**TRIP, **POINTS, "pickup_longitude": -200.0}, "pickup_longitude", "greater than or equal to -180"),
    # A point in no zone: the scorer refuses it (`unknown_zone`), and the refusal table names the point.
    (KAGGLE | {"dropoff_longitude": -73.5}, "dropoff_longitude", "lies in no TLC taxi zone"),
    # JSON true and false are not 1 and 0.
    ({**TRIP, "trip_distance": True}, "trip_distance", "not true or false"),
    ({**TRIP, "passenger_count": False}, "passenger_count", "not true or false"),
    ({**TRIP, "pu_location_id": True}, "pu_location_id", "not true or false"),
    ({**TRIP, **POINTS, "dropoff_latitude": True}, "dropoff_latitude", "not true or false"),
    # Two spellings of one field that disagree, and misspelt names, are named.
    ({**TRIP, "PULocationID": 75}, "pu_location_id", "pu_location_id is 74 but PULocationID is 75"),
    (
        {**{k: v for k, v in TRIP.items() if k != "pickup_datetime"}, "pickup_datetme": TRIP["pickup_datetime"]},
        "pickup_datetme",
        "unknown field; did you mean pickup_datetime?",
    ),
    ({**TRIP, "trip_distnce": 2.4}, "trip_distnce", "unknown field; did you mean trip_distance?"),
    ({**TRIP, "colour": "yellow"}, "colour", "unknown field"),
    # Spaces around a number are a client bug, not zone 74; a huge unknown name is cut, not echoed whole.
    ({**TRIP, "pu_location_id": "   74   "}, "pu_location_id", "without spaces around it"),
    ({**TRIP, "trip_distance": " 2.4"}, "trip_distance", "without spaces around it"),
    ({**TRIP, "passenger_count": "1\n"}, "passenger_count", "without spaces around it"),
    ({**TRIP, "x" * 900_000: 1}, "x" * 64 + "... (900,000 characters)", "unknown field"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_REQUESTS)
def test_bad_trips_are_422_naming_the_field(client: TestClient, body: Any, field: str, message: str) -> None:
    answer = client.post("/predict", json=body)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["problems"]
    assert any(p["field"] == field and message in p["message"] for p in problems), problems
    assert len(answer.content) < 4_000  # the answer names the problem; it does not echo the request


def test_numbers_as_plain_strings_are_read_but_padded_ones_refused(client: TestClient) -> None:
    plain = client.post("/predict", json={**TRIP, "pu_location_id": "74", "trip_distance": "2.4"})
    assert plain.json() == client.post("/predict", json=TRIP).json()
    padded = client.post("/predict", json={**TRIP, "pu_location_id": " 74", "do_location_id": "236 "})
    assert padded.status_code == 422
    assert {p["field"] for p in padded.json()["problems"]} == {"pu_location_id", "do_location_id"}


def test_a_batch_names_the_trip_and_the_field(client: TestClient) -> None:
    answer = client.post("/predict/batch", json={"trips": [TRIP, {**TRIP, "PULocationID": 75, "fare_amont": 1.0}]})
    assert answer.status_code == 422, answer.text
    assert {p["field"] for p in answer.json()["problems"]} == {"trips.1.pu_location_id", "trips.1.fare_amont"}
    extra = client.post("/predict/batch", json={"trips": [TRIP], "trip": TRIP})
    assert extra.status_code == 422
    assert extra.json()["problems"][0]["field"] == "trip"
    # A refusal of the scorer's (no distance for a model that reads it) names the trip's place in the batch.
    refused = client.post("/predict/batch", json={"trips": [TRIP, TRIP, {**TRIP, "trip_distance": None}]})
    assert refused.status_code == 422
    (problem,) = refused.json()["problems"]
    assert problem["field"] == "trips.2.trip_distance"
    assert "uses the metered distance" in problem["message"]


def test_malformed_json_wrong_types_and_non_finite_numbers(client: TestClient) -> None:
    broken = client.post("/predict", content=b'{"pickup_datetime": ', headers=AS_JSON)
    assert broken.status_code == 422
    assert "not valid JSON" in broken.json()["problems"][0]["message"]
    trailing = client.post("/predict", content=json.dumps(TRIP) + ",", headers=AS_JSON)
    assert trailing.status_code == 422
    nan = client.post("/predict", content=json.dumps({**TRIP, "trip_distance": float("nan")}), headers=AS_JSON)
    assert nan.status_code == 422
    assert nan.json()["problems"][0]["field"] == "trip_distance"
    binary = client.post("/predict", content=b"\xc3\x28\xa0\xa1", headers=AS_JSON)
    assert binary.status_code == 400
    assert "UTF-8" in binary.json()["error"]
    untyped = client.post("/predict", content=json.dumps(TRIP))
    assert untyped.status_code == 422
    assert "Content-Type: application/json" in untyped.json()["error"]
    deep = client.post("/predict", content="[" * 1000 + "]" * 1000, headers=AS_JSON)
    assert deep.status_code == 400
    assert "nested too deeply" in deep.json()["error"]
    long = json.dumps(TRIP)[:-1] + ', "vendor_id": ' + "9" * 5000 + "}"
    digits = client.post("/predict", content=long, headers=AS_JSON)
    assert digits.status_code == 400
    assert "over 4,300 digits" in digits.json()["error"]


def test_batches_over_the_limit_and_huge_bodies_are_refused(client: TestClient) -> None:
    over = client.post("/predict/batch", json={"trips": [TRIP] * (MAX_BATCH + 1)})
    assert over.status_code == 422
    assert f"at most {MAX_BATCH}" in over.json()["problems"][0]["message"]
    assert client.post("/predict/batch", json={"trips": []}).status_code == 422
    assert client.post("/predict/batch", json={"trips": TRIP}).status_code == 422
    huge = client.post("/predict", content=b"x" * (2 << 20), headers=AS_JSON)
    assert huge.status_code == 413
    assert f"at most {MAX_BATCH} trips" in huge.json()["error"]
    lying = client.post("/predict", content=json.dumps(TRIP), headers={**AS_JSON, "Content-Length": "-1"})
    assert lying.status_code == 413
    metrics = client.get("/metrics").text  # refused before routing, counted as the route it was sent to
    assert 'taxi_duration_requests_total{endpoint="/predict",status="413"} 2.0' in metrics


def test_a_full_batch_of_new_trips_is_answered_in_order(client: TestClient) -> None:
    """Over `INLINE_TRIPS`, and distances the fast path has never seen: an evaluation in a worker thread."""
    trips = [{**TRIP, "trip_distance": 1 + i / 997} for i in range(MAX_BATCH)]
    answer = client.post("/predict/batch", json={"trips": trips})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == MAX_BATCH
    for i in (0, 417, MAX_BATCH - 1):
        assert predictions[i] == client.post("/predict", json=trips[i]).json()


def test_asking_for_a_feature_set_not_served_is_422(client: TestClient) -> None:
    asked = client.post("/predict", json=TRIP, params={"feature_set": "pretrip"})
    assert asked.status_code == 422
    assert asked.json()["error"] == "this server has no pretrip model: it serves with_distance"
    assert client.post("/predict", json=TRIP, params={"feature_set": "with_distance"}).status_code == 200
    unknown = client.post("/predict", json=TRIP, params={"feature_set": "everything"})
    assert unknown.status_code == 422
    assert unknown.json()["problems"][0]["field"] == "query.feature_set"


def test_keys_guard_predictions_and_admin_calls(keyed: TestClient, client: TestClient) -> None:
    assert keyed.post("/predict", json=TRIP).status_code == 401
    wrong = keyed.post("/predict", json=TRIP, headers={"X-API-Key": "wrong"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "missing or wrong X-API-Key for prediction calls"})
    assert keyed.post("/predict", json=TRIP, headers={"X-API-Key": API_KEY}).status_code == 200
    assert keyed.post("/predict/batch", json={"trips": [TRIP]}).status_code == 401
    assert keyed.post("/predict", json={"bad": 1}).status_code == 401  # the key before the body: nothing leaks
    for path in ("/model", "/metrics"):
        assert keyed.get(path).status_code == 401, path
        assert keyed.get(path, headers={"X-API-Key": API_KEY}).status_code == 200, path
    assert keyed.get("/health").status_code == 200  # probes carry no key
    assert keyed.get("/ready").status_code == 200
    assert keyed.post("/admin/reload").status_code == 401
    assert keyed.post("/admin/reload", headers={"X-API-Key": API_KEY}).status_code == 401
    off = client.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY})
    assert (off.status_code, off.json()["error"]) == (
        403,
        "admin calls are off: start the server with TAXI_DURATION_ADMIN_KEY set",
    )


def test_without_zone_shapes_a_trip_must_give_its_zones(settings: Settings, bundle: Bundle) -> None:
    shapeless = Scorer(bundle, "1", "models:/taxi-duration/1", alias=CHAMPION)
    for client in serving(settings, shapeless):
        refused = client.post("/predict", json=KAGGLE)
        assert refused.status_code == 422
        assert (
            refused.json()["error"]
            == "send pu_location_id and do_location_id: this server has no zone shapes to find them"
        )
        assert client.post("/predict", json=TRIP).status_code == 200


def test_coordinates_stand_in_for_zones(client: TestClient) -> None:
    answer = client.post("/predict", json=KAGGLE)
    assert answer.status_code == 200, answer.text
    zoned = {**KAGGLE, "pu_location_id": 230, "do_location_id": 239}  # the zones the shapes give
    assert client.post("/predict", json=zoned).json() == answer.json()


def test_health_ready_model_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready", "model_version": "1"}
    for path in ("/health", "/ready"):
        head = client.head(path)
        assert (head.status_code, head.content) == (200, b"")
    model = client.get("/model").json()
    assert (model["version"], model["alias"], model["feature_set"]) == ("1", "champion", "with_distance")
    assert model["served_by"] == "native (lightgbm)"
    assert [m["version"] for m in model["served"]] == ["1"]
    assert model["source"] == ", ".join(CHAMPION_MODELS)
    client.post("/predict", json=TRIP)
    client.post("/predict", json={**TRIP, "pu_location_id": 999})
    client.get(f"/no/such/{os.urandom(4).hex()}")
    metrics = client.get("/metrics").text
    assert_served_and_refused_counted(metrics)
    assert 'taxi_duration_requests_total{endpoint="unmatched",status="404"}' in metrics


def test_no_model_loaded_is_503(settings: Settings) -> None:
    with TestClient(create_app(ModelHolder(settings))) as client:
        assert client.get("/health").status_code == 200
        for answer in (client.get("/ready"), client.get("/model"), client.post("/predict", json=TRIP)):
            assert (answer.status_code, answer.json()) == (503, {"error": "no model loaded yet"})


def test_the_openapi_schema_documents_every_field_and_refusal(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    trip = spec["components"]["schemas"]["Trip"]
    assert trip["required"] == ["pickup_datetime"]
    fields = trip["properties"]
    assert set(fields) == {
        "pickup_datetime",
        "pu_location_id",
        "do_location_id",
        "passenger_count",
        "trip_distance",
        "vendor_id",
        *s.COORDINATES,
    }
    assert all(f.get("description") for f in fields.values()), "every field says what it is"
    zone = fields["pu_location_id"]["anyOf"][0]
    assert (zone["minimum"], zone["maximum"]) == validation.KNOWN_ZONES
    distance = fields["trip_distance"]["anyOf"][0]
    assert (distance["exclusiveMinimum"], distance["maximum"]) == (0, validation.MAX_DISTANCE_MI)
    assert fields["passenger_count"]["anyOf"][0]["maximum"] == validation.MAX_PASSENGERS
    assert any("PULocationID" in e for e in trip["examples"])
    assert any("pu_location_id" in e for e in trip["examples"])
    assert spec["components"]["schemas"]["Batch"]["properties"]["trips"]["maxItems"] == MAX_BATCH
    assert set(spec["paths"]) == {"/predict", "/predict/batch", "/health", "/ready", "/model", "/metrics"} | {
        "/admin/reload"
    }
    predict = spec["paths"]["/predict"]["post"]
    assert {"401", "413", "422", "503"} <= set(predict["responses"])
    assert predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/Problem")
    assert {p["name"] for p in predict["parameters"]} == {"feature_set", "x-api-key"}
    assert set(spec["paths"]["/admin/reload"]["post"]["responses"]) >= {"401", "403", "409"}
    operations = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(operations) == len(set(operations))
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs-assets/swagger-ui-bundle.js" in page.text


def test_every_reason_a_request_is_refused_for_has_its_422() -> None:
    assert set(REFUSAL_OF) == set(validation.REQUEST_CODES)


# A canonical trip breaking one request rule, as the scorer sees it when the schema is not in front of it
# (the stream, `predict`), with the field its 422 names: each row of the table, through the real scorer.
PICKUP = datetime(2023, 3, 14, 8, 30)
CANONICAL = {s.PICKUP: PICKUP, s.PU_ZONE: 74, s.DO_ZONE: 236, s.PASSENGERS: 1, s.DISTANCE: 2.4}
BROKEN = {
    validation.missing(s.PICKUP): ({s.PICKUP: None}, s.PICKUP, "required"),
    validation.missing(s.PU_ZONE): ({s.PU_ZONE: None}, s.PU_ZONE, "required"),
    validation.missing(s.DO_ZONE): ({s.DO_ZONE: None}, s.DO_ZONE, "required"),
    validation.missing(s.DISTANCE): ({s.DISTANCE: None}, s.DISTANCE, "uses the metered distance"),
    validation.BOOKING_OUT_OF_RANGE: ({s.PICKUP: datetime(2099, 1, 1)}, s.PICKUP, PICKUP_RANGE),
    "unknown_zone": ({s.DO_ZONE: 265}, s.DO_ZONE, "must be a TLC taxi zone id, 1-263"),
    "non_positive_distance": ({s.DISTANCE: 0.0}, s.DISTANCE, "must be greater than 0"),
    "huge_distance": ({s.DISTANCE: 250.0}, s.DISTANCE, "must be at most 100"),
    "bad_passenger_count": ({s.PASSENGERS: 12}, s.PASSENGERS, "must be at least 0 and at most 9"),
}


@pytest.mark.parametrize("code", validation.REQUEST_CODES)
def test_each_refusal_names_the_field_its_rule_reads(scorer: Scorer, code: str) -> None:
    changes, field, message = BROKEN[code]
    trip = {**CANONICAL, **changes}
    scored = scorer.score([trip])
    assert scored is not None
    assert scored.reasons == [code]
    zones = {zone: float(scored.zones[zone][0]) for zone in s.ZONES}
    named, said, _ = refusal_of(Refused(scorer, trip, zones), code)
    assert named == field
    assert message in said


def test_a_trip_refused_for_several_reasons_gets_the_first_entrys_422(scorer: Scorer) -> None:
    trip = {**CANONICAL, s.DISTANCE: None, s.PASSENGERS: 12, s.DO_ZONE: 265}
    scored = scorer.score([trip])
    assert scored is not None
    (reasons,) = scored.reasons
    assert reasons is not None
    assert set(validation.split_codes(reasons)) == {
        validation.missing(s.DISTANCE),
        "unknown_zone",
        "bad_passenger_count",
    }
    zones = {zone: float(scored.zones[zone][0]) for zone in s.ZONES}
    assert refusal_of(Refused(scorer, trip, zones), reasons)[0] == s.DISTANCE


SCHEMA_IN_OTHER_ZONES = """
import json, os, sys, time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from pydantic import ValidationError
from taxi_duration.ingest import validation
from taxi_duration.serve.api.schemas import Trip

def accepted(pickup):
    try:
        Trip.model_validate({"pickup_datetime": pickup.isoformat(), "pu_location_id": 74, "do_location_id": 75})
    except ValidationError:
        return False
    return True

seen = {}
for zone in sys.argv[1:]:
    os.environ["TZ"] = zone
    time.tzset()
    today = datetime.now(ZoneInfo("America/New_York")).date()
    last = datetime.combine(today + timedelta(days=366), datetime.max.time()).replace(microsecond=0)
    seen[zone] = {
        "offset": time.strftime("%z"),
        "today": str(today),
        "window_last": str(validation.booking_window().last),
        "last_day": str(validation.last_day()),
        "last_accepted": accepted(last),
        "next_refused": not accepted(last + timedelta(seconds=1)),
        "same_day": datetime.now(ZoneInfo("America/New_York")).date() == today,
    }
print(json.dumps(seen))
"""
# UTC+14 and UTC-11: at any hour, the local date of one of them is not New York's.
OTHER_ZONES = {"Pacific/Kiritimati": "+1400", "Pacific/Pago_Pago": "-1100"}


def test_the_schema_books_by_new_yorks_day_in_a_process_of_another_zone() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCHEMA_IN_OTHER_ZONES, *OTHER_ZONES], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    for zone, seen in json.loads(run.stdout).items():
        if not seen["same_day"]:  # New York's midnight passed while it looked: nothing to compare
            continue
        today = datetime.fromisoformat(seen["today"]).date()
        assert seen["offset"] == OTHER_ZONES[zone]
        assert seen["window_last"] == str(today + timedelta(days=366)), zone
        assert seen["last_day"] == str(today + timedelta(days=1)), zone
        assert seen["last_accepted"], zone
        assert seen["next_refused"], zone


# How the model behaves: what any sensible duration model does, checked on the bundle above.
def minutes(scorer: Scorer, trips: list[dict[str, Any]]) -> np.ndarray:
    scored = scorer.score(trips)
    assert scored is not None
    assert all(r is None for r in scored.reasons)
    return scored.minutes


PAIRS = [(74, 236), (132, 230), (161, 237), (138, 1), (236, 238), (79, 164)]


def test_a_longer_trip_is_not_predicted_shorter(scorer: Scorer) -> None:
    distances = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    for pu, do in PAIRS:
        trips = [{**CANONICAL, s.PU_ZONE: pu, s.DO_ZONE: do, s.DISTANCE: d} for d in distances]
        predicted = minutes(scorer, trips)
        assert (np.diff(predicted) >= 0).all(), (pu, do, predicted.round(2).tolist())
        assert predicted[-1] > predicted[0]


def test_passenger_count_barely_changes_the_minutes(scorer: Scorer) -> None:
    # Not exactly: passenger_count is a feature, and the trees split on it for a tenth or two of a minute
    # (at most 1% on these pairs); the synthetic durations do not depend on it.
    for pu, do in PAIRS:
        trips = [{**CANONICAL, s.PU_ZONE: pu, s.DO_ZONE: do, s.PASSENGERS: n} for n in (None, 1, 2, 3, 4, 5, 6)]
        predicted = minutes(scorer, trips)
        assert predicted[0] == predicted[1]  # missing is 1 (the repair), not a value of its own
        assert np.ptp(predicted) <= 0.02 * predicted.mean(), (pu, do, predicted.round(2).tolist())


def test_rush_hour_is_slower_than_night(scorer: Scorer) -> None:
    tuesday = datetime(2023, 3, 14)
    for pu, do in PAIRS:
        rush, night = (
            {**CANONICAL, s.PU_ZONE: pu, s.DO_ZONE: do, s.PICKUP: tuesday + timedelta(hours=h)} for h in (8.5, 3)
        )
        slow, fast = minutes(scorer, [rush, night])
        assert slow > fast, (pu, do, slow, fast)
