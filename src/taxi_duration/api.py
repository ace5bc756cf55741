"""The prediction API: FastAPI over the served model, hard to break and cheap per request.

Every input is checked before it reaches the model, and every refusal is a 4xx whose body says which field
was wrong and why. Prediction calls take an optional API key (`TAXI_DURATION_API_KEY`), admin calls a
separate one (`TAXI_DURATION_ADMIN_KEY`); without an admin key the admin calls are off.
"""

from __future__ import annotations

import difflib
import hmac
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from swagger_ui_bundle import swagger_ui_path

from taxi_duration import __version__, validation
from taxi_duration import schema as s
from taxi_duration.scorer import Scorer
from taxi_duration.serving import ModelHolder
from taxi_duration.validation import FIRST_DAY, MAX_DISTANCE_MI, MAX_PASSENGERS

NEW_YORK = ZoneInfo(s.TIME_ZONE)
AHEAD = timedelta(days=366)  # a booking may be a year ahead, recorded trips not (validation.CLOCK_ALLOWANCE)
MAX_BATCH = 1000
# Up to this many trips, all answered from the fast path's memory, a prediction takes microseconds and runs
# on the event loop; anything else runs in a worker thread, so no request can hold up the others. Such
# evaluations run one at a time: more threads would not run Python faster under the GIL, only take a
# larger share of it from the event loop.
INLINE_TRIPS = 100
EVALUATIONS_AT_ONCE = 1
# Numeric fields, where JSON true/false must not pass as 1/0.
NUMBERS = ("pu_location_id", "do_location_id", "passenger_count", "trip_distance", "vendor_id", *s.COORDINATES)
DECIMALS = 2  # minutes are answered to the hundredth; more digits than that is noise
MAX_BODY_BYTES = 1 << 20  # 1 MiB holds a full batch several times over
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MINUTE_BUCKETS = (2, 5, 10, 15, 20, 30, 45, 60, 90)
KEY_HELP = "The prediction key, when the server has one (TAXI_DURATION_API_KEY)."
UNMATCHED = "unmatched"  # the metrics label of every path no route serves: one label, not one per path
DOCS_ASSETS = "/docs-assets"  # Swagger UI's files, served from the installed package: /docs works offline

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
    low, high = validation.KNOWN_ZONES
    return Field(
        None,
        ge=low,
        le=high,
        validation_alias=_names(column),
        description=f"{description}: a TLC taxi zone id, {low}-{high}. The TLC's 264 ('unknown') and 265 "
        "('outside NYC') carry no place: training quarantines them (rule `unknown_zone`), so the API refuses them.",
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
    )  # extra names are checked by `_names_known_and_agreeing`, which can name them

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

    @model_validator(mode="before")
    @classmethod
    def _names_known_and_agreeing(cls, data: Any) -> Any:
        """Refuse names the API does not know (a misspelt field would otherwise be silently left out) and
        two spellings of one field with different values (`pu_location_id` 74, `PULocationID` 75)."""
        if not isinstance(data, dict):
            return data
        problems = [
            (name, "unknown field" + "".join(f"; did you mean {m}?" for m in difflib.get_close_matches(name, READ, 1)))
            for name in data
            if name not in READ and name not in IGNORED
        ]
        for field, spellings in SPELLINGS.items():
            given = {name: data[name] for name in spellings if name in data}
            if len({repr(v) for v in given.values()}) > 1:
                said = " but ".join(f"{name} is {value!r}" for name, value in given.items())
                problems.append((field, f"{said}: send one of them"))
        if problems:
            raise PydanticCustomError("names", "{summary}", {"summary": _summary(problems), "problems": problems})
        return data

    @field_validator(*NUMBERS, mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        # JSON true and false would pass as 1 and 0: a client bug to refuse, not a number to read.
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        return value

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


# Every name a trip may carry: the spellings of each field (read) and the rest of a TLC record (ignored).
SPELLINGS: dict[str, tuple[str, ...]] = {
    name: tuple(str(a) for a in f.validation_alias.choices) if isinstance(f.validation_alias, AliasChoices) else (name,)
    for name, f in Trip.model_fields.items()
}
READ: tuple[str, ...] = tuple(sorted({n for names in SPELLINGS.values() for n in names}))
IGNORED = frozenset({*(a for c in s.COLUMNS for a in (c.name, *c.aliases)), *s.TLC_RECORD_EXTRAS}) - set(READ)


def _summary(problems: list[tuple[str, str]]) -> str:
    return "; ".join(f"{field}: {message}" for field, message in problems)


class Batch(BaseModel):
    """Up to `MAX_BATCH` trips in one call."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"trips": [EXAMPLE, TLC_EXAMPLE]}]})

    trips: list[Trip] = Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} trips.")


class Interval(BaseModel):
    """Where 80% of such trips end: the 10th and 90th percentiles, in minutes (to the hundredth)."""

    p10: float
    p90: float


class Prediction(BaseModel):
    """A predicted duration, in minutes to the hundredth."""

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
    400: _refusal("The body could not be decoded (not UTF-8, JSON nested too deeply, a number too long)"),
    401: _refusal("The server has a prediction key and the request did not send it in X-API-Key"),
    413: _refusal(f"The body is over {MAX_BODY_BYTES:,} bytes"),
    503: _refusal("No model is loaded yet"),
}
ADMIN_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: _refusal("Missing or wrong admin key in X-API-Key"),
    403: _refusal("Admin calls are off: the server has no admin key"),
    409: _refusal("The new version failed to load or its check (both named); the old one is still served"),
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

    def __init__(self, app: Any, limit: int, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app, self.limit, self.metrics, self.routes = app, limit, metrics, routes

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), "500"

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
            endpoint = self._template(scope)
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            self.metrics.requests.labels(endpoint, status).inc()

    def _template(self, scope: dict[str, Any]) -> str:
        """The route's path template (`/predict`), never the raw path: random paths must not each become a
        metrics label. The router leaves the route it picked in the scope; a request refused before
        routing (413) is matched here."""
        route = scope.get("route") or next((r for r in self.routes if r.matches(scope)[0] != Match.NONE), None)
        return str(getattr(route, "path", UNMATCHED))

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
        if error["type"] == "names":  # one problem per field name, each named
            out += [{"field": ".".join([*where, f]), "message": m} for f, m in error["ctx"]["problems"]]
            continue
        problem = {"field": ".".join(where) or "body", "message": error["msg"]}
        if "input" in error and error["type"] != "missing":
            problem["got"] = repr(error["input"])[:80]
        out.append(problem)
    return out


def _unreadable(cause: BaseException | None) -> str:
    """Why a body that may be valid JSON could not be read: FastAPI's own 400 says only "There was an error
    parsing the body"."""
    if isinstance(cause, RecursionError):
        return "the body could not be read: its JSON is nested too deeply"
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return f"the body could not be read: a number in it has over {sys.get_int_max_str_digits():,} digits"
    return UNREADABLE


def _rounded(values: Any) -> list[float]:
    return [round(v, DECIMALS) for v in values.tolist()]


def _refusal_of(model: Scorer, trip: dict[str, Any], reasons: str, found: dict[str, Any]) -> tuple[str, str, str]:
    """(field, message, kind) of the 422 for a trip the scorer refused: the request schema has checked every
    bound already, so what is left is a point outside every zone or a distance this model needs."""
    if validation.missing(s.DISTANCE) in reasons:
        feature_set = model.bundle.meta.feature_set
        message = f"required: model version {model.version} uses the metered distance (feature set {feature_set})"
        return s.DISTANCE, message, "missing"
    if "unknown_zone" in reasons:
        low, high = validation.KNOWN_ZONES
        zone, (lon, lat) = next((z, p) for z, p in s.ZONE_POINTS.items() if not low <= found[z] <= high)
        point = f"({trip[lon]}, {trip[lat]})"
        message = f"the point {point} lies in no TLC taxi zone: send {zone}, or a point in New York City"
        return lon, message, "value_error"
    return "body", f"cannot be predicted: {reasons}", "value_error"


def create_app(holder: ModelHolder, api_key: str | None = None, admin_key: str | None = None) -> FastAPI:
    """The API over a started `ModelHolder`, which it closes when the server stops."""
    metrics = Metrics()
    evaluations: list[anyio.CapacityLimiter] = []  # made once the event loop runs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        evaluations.append(anyio.CapacityLimiter(EVALUATIONS_AT_ONCE))
        yield
        # Here, not after uvicorn returns: on SIGTERM uvicorn ends by re-raising the signal, killing the
        # process before any code after it runs.
        holder.close()

    app = FastAPI(
        title="taxi-duration",
        version=__version__,
        summary="How long will this NYC taxi trip take? Predictions from the champion model in MLflow.",
        responses={422: {"model": Problem, "description": "The request was not a valid trip"}},
        docs_url=None,
        lifespan=lifespan,
    )
    app.add_middleware(Edge, limit=MAX_BODY_BYTES, metrics=metrics, routes=app.routes)
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    holder.on_reload = lambda status: metrics.reloads.labels(status.outcome).inc()

    def served() -> Scorer:
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
        error = _unreadable(exc.__cause__) if exc.status_code == 400 else exc.detail
        return JSONResponse({"error": error}, status_code=exc.status_code, headers=exc.headers)

    async def answer(model: Scorer, trips: list[Trip]) -> list[Prediction]:
        ready = [t.canonical() for t in trips]
        if model.zones is None and any(c[s.PU_ZONE] is None or c[s.DO_ZONE] is None for c in ready):
            raise HTTPException(422, f"send {' and '.join(s.ZONES)}: this server has no zone shapes to find them")
        scored = model.score(ready, remembered_only=True) if len(ready) <= INLINE_TRIPS else None
        if scored is None:  # an evaluation of new trips: milliseconds, in a worker thread so others go on
            scored = await anyio.to_thread.run_sync(partial(model.score, ready), limiter=evaluations[0])
        assert scored is not None
        if refused := [(i, r) for i, r in enumerate(scored.reasons) if r is not None]:
            first, reasons = refused[0]
            found = {zone: scored.zones[zone][first] for zone in s.ZONES}
            refuse(trips, first, *_refusal_of(model, ready[first], reasons, found))
        metrics.trips.inc(len(trips))
        for m in scored.minutes:
            metrics.minutes.observe(m)
        return [
            Prediction(duration_minutes=m, interval=Interval(p10=lo, p90=hi), model_version=model.version)
            for m, lo, hi in zip(_rounded(scored.minutes), _rounded(scored.p10), _rounded(scored.p90), strict=True)
        ]

    keyed = [Depends(prediction_key)]

    @app.post("/predict", response_model=Prediction, dependencies=keyed, tags=["predictions"], responses=REFUSALS)
    async def predict(trip: Trip) -> Prediction:
        """Predict one trip's duration in minutes, with the p10-p90 interval."""
        return (await answer(served(), [trip]))[0]

    @app.post(
        "/predict/batch", response_model=BatchPrediction, dependencies=keyed, tags=["predictions"], responses=REFUSALS
    )
    async def predict_batch(batch: Batch) -> BatchPrediction:
        """Predict up to 1000 trips at once; predictions come back in the order sent."""
        model = served()
        return BatchPrediction(predictions=await answer(model, batch.trips), model_version=model.version)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], responses={503: _refusal("No model is loaded yet")})
    async def ready() -> dict[str, Any]:
        """Readiness: a checked model is loaded (503 otherwise)."""
        return {"status": "ready", "model_version": served().version}

    for probe in (health, ready):  # probes may ask with HEAD; kept out of the spec, whose ids must be unique
        app.add_api_route(f"/{probe.__name__}", probe, methods=["HEAD"], include_in_schema=False)

    @app.get("/model", dependencies=keyed, tags=["operations"], responses=REFUSALS)
    async def model_info() -> dict[str, Any]:
        """The served model: version, feature set, training window, validation metrics, last reload."""
        return {**served().describe(), "reload": asdict(holder.status), "source": holder.uri}

    @app.get("/metrics", dependencies=keyed, tags=["operations"], response_class=Response, responses=REFUSALS)
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
            refused = f"version {status.refused}" if status.refused else f"the version {holder.uri} names"
            raise HTTPException(409, f"refused {refused}: {status.error}; still serving version {served().version}")
        return {**asdict(status), "model_version": served().version}

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        """Swagger UI, from files this server holds (no CDN: it works offline)."""
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png",
        )

    return app


def refuse(trips: list[Trip], i: int, field: str, message: str, kind: str) -> NoReturn:
    """Raise the 422 for one field of trip `i` (the field alone for a single trip)."""
    where = (field,) if len(trips) == 1 else ("trips", str(i), field)
    raise RequestValidationError([{"loc": ("body", *where), "msg": message, "type": kind}])
