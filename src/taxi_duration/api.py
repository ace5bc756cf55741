"""The prediction API: FastAPI over the served model, hard to break and cheap per request.

Every input is checked before it reaches the model, and every refusal is a 4xx whose body says which field
was wrong and why. Prediction calls take an optional API key (`TAXI_DURATION_API_KEY`), admin calls a
separate one (`TAXI_DURATION_ADMIN_KEY`); without an admin key the admin calls are off.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from taxi_duration import __version__
from taxi_duration import schema as s
from taxi_duration.geo import ZoneIndex
from taxi_duration.serving import ModelHolder, Served
from taxi_duration.validation import FIRST_DAY, MAX_DISTANCE_MI, MAX_PASSENGERS

NEW_YORK = ZoneInfo(s.TIME_ZONE)
AHEAD = timedelta(days=366)  # a booking may be a year ahead, recorded trips not (validation.CLOCK_ALLOWANCE)
ZONE_IDS = (1, 265)
MAX_BATCH = 1000
MAX_BODY_BYTES = 1 << 20  # 1 MiB holds a full batch several times over
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MINUTE_BUCKETS = (2, 5, 10, 15, 20, 30, 45, 60, 90)
KEY_HELP = "The prediction key, when the server has one (TAXI_DURATION_API_KEY)."

EXAMPLE: dict[str, Any] = {
    "pickup_datetime": "2023-03-14T08:30:00",
    "pu_location_id": 74,
    "do_location_id": 236,
    "passenger_count": 1,
    "trip_distance": 2.4,
}
TLC_EXAMPLE: dict[str, Any] = {
    "lpep_pickup_datetime": "2023-03-14 08:30:00",
    "PULocationID": 74,
    "DOLocationID": 236,
    "passenger_count": 1,
    "trip_distance": 2.4,
    "VendorID": 2,
}


def _names(column: str) -> AliasChoices:
    """The canonical name and every TLC spelling the schema knows for a column."""
    return AliasChoices(column, *(a for a in s.BY_NAME[column].aliases if a != column))


def _zone(description: str, column: str) -> Any:
    return Field(
        None,
        ge=ZONE_IDS[0],
        le=ZONE_IDS[1],
        validation_alias=_names(column),
        description=f"{description}: a TLC taxi zone id, 1-265 (264 and 265 are 'unknown' and 'outside NYC').",
    )


def _degrees(column: str, limit: int) -> Any:
    return Field(
        None,
        ge=-limit,
        le=limit,
        validation_alias=_names(column),
        description=f"{s.BY_NAME[column].doc}, degrees. With all four coordinates the zones may be left out "
        "(the server assigns them from the TLC zone shapes), and the distance features use the exact points.",
    )


class Trip(BaseModel):
    """One trip as known at booking. TLC column names (`PULocationID`, `lpep_pickup_datetime`...) work too."""

    model_config = ConfigDict(
        extra="ignore", allow_inf_nan=False, json_schema_extra={"examples": [EXAMPLE, TLC_EXAMPLE]}
    )

    pickup_datetime: datetime = Field(
        validation_alias=_names(s.PICKUP),
        description="Pickup time, ISO 8601. Without an offset it is New York time, as in TLC files.",
    )
    pu_location_id: int | None = _zone("Pickup zone", s.PU_ZONE)
    do_location_id: int | None = _zone("Dropoff zone", s.DO_ZONE)
    passenger_count: int | None = Field(
        None, ge=0, le=MAX_PASSENGERS, description="Passengers, 0-9; missing or 0 counts as 1 (the TLC's default)."
    )
    trip_distance: float | None = Field(
        None,
        gt=0,
        le=MAX_DISTANCE_MI,
        description="Metered miles. Required by models trained on the `with_distance` feature set.",
    )
    vendor_id: int | None = Field(None, ge=0, le=99, validation_alias=_names(s.VENDOR), description="TLC vendor id.")
    pickup_longitude: float | None = _degrees(s.PU_LON, 180)
    pickup_latitude: float | None = _degrees(s.PU_LAT, 90)
    dropoff_longitude: float | None = _degrees(s.DO_LON, 180)
    dropoff_latitude: float | None = _degrees(s.DO_LAT, 90)

    @model_validator(mode="after")
    def _zones_or_coordinates(self) -> Trip:
        if (self.pu_location_id is None or self.do_location_id is None) and not self.has_coordinates:
            raise ValueError(
                "pu_location_id and do_location_id are required, unless the trip gives all four coordinates"
            )
        return self

    @property
    def has_coordinates(self) -> bool:
        """All four coordinates given."""
        points = (self.pickup_longitude, self.pickup_latitude, self.dropoff_longitude, self.dropoff_latitude)
        return all(p is not None for p in points)

    @field_validator("pickup_datetime")
    @classmethod
    def _in_range(cls, value: datetime) -> datetime:
        earliest, latest = datetime.combine(FIRST_DAY, datetime.min.time()), datetime.now() + AHEAD
        problem = f"must lie between {FIRST_DAY} (the first TLC records) and a year from today"
        if value.tzinfo is not None:
            try:
                value = value.astimezone(NEW_YORK).replace(tzinfo=None)
            except OverflowError:  # year 1 or 9999 with an offset: outside any calendar Python keeps
                raise ValueError(problem) from None
        if not earliest <= value <= latest:
            raise ValueError(problem)
        return value

    def canonical(self) -> dict[str, Any]:
        """The trip in the canonical column names the feature path reads."""
        return {
            s.PICKUP: self.pickup_datetime,
            s.PU_ZONE: self.pu_location_id,
            s.DO_ZONE: self.do_location_id,
            s.PASSENGERS: self.passenger_count,
            s.DISTANCE: self.trip_distance,
            s.VENDOR: self.vendor_id,
            s.PU_LON: self.pickup_longitude,
            s.PU_LAT: self.pickup_latitude,
            s.DO_LON: self.dropoff_longitude,
            s.DO_LAT: self.dropoff_latitude,
        }


class Batch(BaseModel):
    """Up to `MAX_BATCH` trips in one call."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"trips": [EXAMPLE, TLC_EXAMPLE]}]})

    trips: list[Trip] = Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} trips.")


class Interval(BaseModel):
    """Where 80% of such trips end: the 10th and 90th percentiles, in minutes."""

    p10: float
    p90: float


class Prediction(BaseModel):
    """A predicted duration."""

    duration_minutes: float
    interval: Interval
    model_version: str


class BatchPrediction(BaseModel):
    """One prediction per trip, in the order sent."""

    predictions: list[Prediction]
    model_version: str


class Problem(BaseModel):
    """What was wrong with a request."""

    error: str
    problems: list[dict[str, Any]] = []


class Refusal(BaseModel):
    """Why a request was refused."""

    error: str


def _refusal(description: str) -> dict[str, Any]:
    return {"model": Refusal, "description": description}


UNREADABLE = "the body could not be read: send JSON encoded as UTF-8"
REFUSALS: dict[int | str, dict[str, Any]] = {
    400: _refusal("The body could not be decoded (not UTF-8)"),
    401: _refusal("The server has a prediction key and the request did not send it in X-API-Key"),
    413: _refusal(f"The body is over {MAX_BODY_BYTES:,} bytes"),
    503: _refusal("No model is loaded yet"),
}
ADMIN_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: _refusal("Missing or wrong admin key in X-API-Key"),
    403: _refusal("Admin calls are off: the server has no admin key"),
    409: _refusal("The new version failed to load or its check; the old one is still served"),
}


class Metrics:
    """Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "taxi_duration_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "taxi_duration_request_seconds",
            "Request latency inside the server",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.minutes = Histogram(
            "taxi_duration_predicted_minutes", "Predicted durations", buckets=MINUTE_BUCKETS, registry=self.registry
        )
        self.trips = Counter("taxi_duration_predicted_trips", "Trips predicted", registry=self.registry)
        self.version = Gauge("taxi_duration_model_version", "Model version being served", registry=self.registry)
        self.reloads = Counter("taxi_duration_reloads", "Model reloads", ["outcome"], registry=self.registry)


class Edge:
    """Every HTTP request passes here: bodies over `limit` bytes get a 413 before they are read whole, and
    each request is timed and counted. A pure ASGI middleware: Starlette's `BaseHTTPMiddleware` would cost
    more per request than the model does."""

    def __init__(self, app: Any, limit: int, metrics: Metrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, path, status = time.perf_counter(), scope["path"], "500"

        async def sent(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        declared = dict(scope["headers"]).get(b"content-length")
        try:
            if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
                await JSONResponse({"error": _too_large(self.limit)}, status_code=413)(scope, receive, sent)
            else:
                await self.app(scope, self._counted(receive), sent)
        finally:
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)
            self.metrics.requests.labels(path, status).inc()

    def _counted(self, receive: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        """`receive`, refusing a body (sent without a length, in chunks) once it passes the limit."""
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, _too_large(self.limit))
            return message

        return counted


def _too_large(limit: int) -> str:
    return f"request body over {limit:,} bytes; send at most {MAX_BATCH} trips per batch"


def _problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors():
        if error["type"] == "json_invalid":
            reason = error.get("ctx", {}).get("error", "")
            out.append({"field": "body", "message": f"not valid JSON: {reason} at character {error['loc'][-1]}"})
            continue
        where = [str(part) for part in error["loc"] if part != "body"]
        problem = {"field": ".".join(where) or "body", "message": error["msg"]}
        if "input" in error and error["type"] != "missing":
            problem["got"] = repr(error["input"])[:80]
        out.append(problem)
    return out


def assign_zones(index: ZoneIndex, trips: list[dict[str, Any]]) -> None:
    """Fill the missing zone ids of canonical trips from their coordinates, in one query for the batch."""
    for zone, (lon, lat) in s.ZONE_POINTS.items():
        found = index.assign([t[lon] for t in trips], [t[lat] for t in trips])
        for trip, value in zip(trips, found.tolist(), strict=True):
            if trip[zone] is None:
                trip[zone] = value


def create_app(
    holder: ModelHolder, api_key: str | None = None, admin_key: str | None = None, zones: ZoneIndex | None = None
) -> FastAPI:
    """The API over a started `ModelHolder`; with `zones`, trips may give coordinates instead of zone ids."""
    metrics = Metrics()
    app = FastAPI(
        title="taxi-duration",
        version=__version__,
        summary="How long will this NYC taxi trip take? Predictions from the champion model in MLflow.",
        responses={422: {"model": Problem, "description": "The request was not a valid trip"}},
    )
    app.add_middleware(Edge, limit=MAX_BODY_BYTES, metrics=metrics)
    holder.on_reload = lambda status: metrics.reloads.labels(status.outcome).inc()

    def served() -> Served:
        current = holder.current
        if current is None:
            raise HTTPException(503, "no model loaded yet")
        return current

    def has_key(given: str | None, expected: str) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), expected.encode())

    async def prediction_key(x_api_key: Annotated[str | None, Header(description=KEY_HELP)] = None) -> None:
        if api_key is not None and not has_key(x_api_key, api_key):
            raise HTTPException(401, "missing or wrong X-API-Key for prediction calls")

    async def admin(x_api_key: Annotated[str | None, Header(description="The admin key.")] = None) -> None:
        if admin_key is None:
            raise HTTPException(403, "admin calls are off: start the server with TAXI_DURATION_ADMIN_KEY set")
        if not has_key(x_api_key, admin_key):
            raise HTTPException(401, "missing or wrong X-API-Key for admin calls")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = f"invalid request to {request.url.path}"
        if "json" not in request.headers.get("content-type", ""):
            error += ": send a JSON object with Content-Type: application/json"
        body = {"error": error, "problems": _problems(exc)}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own 400 says only "There was an error parsing the body": bytes that are not UTF-8.
        error = UNREADABLE if exc.status_code == 400 else exc.detail
        return JSONResponse({"error": error}, status_code=exc.status_code, headers=exc.headers)

    def answer(model: Served, trips: list[Trip]) -> list[Prediction]:
        canonical = [t.canonical() for t in trips]
        if unzoned := [c for c in canonical if c[s.PU_ZONE] is None or c[s.DO_ZONE] is None]:
            if zones is None:
                raise HTTPException(
                    422, "send pu_location_id and do_location_id: this server has no zone shapes to find them"
                )
            assign_zones(zones, unzoned)
        if model.needs_distance:
            missing = [i for i, t in enumerate(canonical) if t[s.DISTANCE] is None]
            if missing:
                where = "trip_distance" if len(trips) == 1 else f"trips.{missing[0]}.trip_distance"
                raise RequestValidationError(
                    [
                        {
                            "loc": ("body", *where.split(".")),
                            "msg": f"required: model version {model.version} uses the metered distance "
                            f"(feature set {model.bundle.meta.feature_set})",
                            "type": "missing",
                        }
                    ]
                )
        minutes, low, high = model.predict(canonical)
        metrics.trips.inc(len(trips))
        for m in minutes:
            metrics.minutes.observe(m)
        return [
            Prediction(duration_minutes=m, interval=Interval(p10=lo, p90=hi), model_version=model.version)
            for m, lo, hi in zip(minutes.tolist(), low.tolist(), high.tolist(), strict=True)
        ]

    keyed = [Depends(prediction_key)]

    @app.post("/predict", response_model=Prediction, dependencies=keyed, tags=["predictions"], responses=REFUSALS)
    async def predict(trip: Trip) -> Prediction:
        """Predict one trip's duration in minutes, with the p10-p90 interval."""
        return answer(served(), [trip])[0]

    @app.post(
        "/predict/batch", response_model=BatchPrediction, dependencies=keyed, tags=["predictions"], responses=REFUSALS
    )
    async def predict_batch(batch: Batch) -> BatchPrediction:
        """Predict up to 1000 trips at once; predictions come back in the order sent."""
        model = served()
        return BatchPrediction(predictions=answer(model, batch.trips), model_version=model.version)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], responses={503: _refusal("No model is loaded yet")})
    async def ready() -> dict[str, Any]:
        """Readiness: a checked model is loaded (503 otherwise)."""
        return {"status": "ready", "model_version": served().version}

    @app.get("/model", tags=["operations"], responses={503: _refusal("No model is loaded yet")})
    async def model_info() -> dict[str, Any]:
        """The served model: version, feature set, training window, validation metrics, last reload."""
        return {**served().describe(), "reload": asdict(holder.status), "source": holder.uri}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, predicted durations, model version."""
        if holder.current is not None:
            metrics.version.set(float(holder.current.version) if holder.current.version.isdigit() else -1)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/admin/reload", dependencies=[Depends(admin)], tags=["operations"], responses=ADMIN_REFUSALS)
    def reload() -> dict[str, Any]:
        """Load the version the model URI names now; the old one serves until the new one is checked."""
        status = holder.reload()
        if status.outcome == "failed":
            raise HTTPException(409, f"kept version {served().version}: {status.error}")
        return {**asdict(status), "model_version": served().version}

    return app
