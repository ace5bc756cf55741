"""The app: its routes, each a few lines over the served model, and how the parts are wired together."""

from __future__ import annotations

import hmac
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from functools import partial
from typing import Annotated, Any, NoReturn

import anyio
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from swagger_ui_bundle import swagger_ui_path

from taxi_duration import __version__, validation
from taxi_duration import schema as s
from taxi_duration.api.schemas import MAX_BATCH, Batch, BatchPrediction, Interval, Prediction, Problem, Refusal, Trip
from taxi_duration.geo import ZoneIndex, fill_zones
from taxi_duration.serving import ModelHolder, Served

# Up to this many trips, all answered from the fast path's memory, a prediction takes microseconds and runs
# on the event loop; anything else runs in a worker thread, so no request can hold up the others. Such
# evaluations run one at a time: more threads would not run Python faster under the GIL, only take a
# larger share of it from the event loop.
INLINE_TRIPS = 100
EVALUATIONS_AT_ONCE = 1
DECIMALS = 2  # minutes are answered to the hundredth; more digits than that is noise
MAX_BODY_BYTES = 1 << 20  # 1 MiB holds a full batch several times over
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MINUTE_BUCKETS = (2, 5, 10, 15, 20, 30, 45, 60, 90)
KEY_HELP = "The prediction key, when the server has one (TAXI_DURATION_API_KEY)."
UNMATCHED = "unmatched"  # the metrics label of every path no route serves: one label, not one per path
DOCS_ASSETS = "/docs-assets"  # Swagger UI's files, served from the installed package: /docs works offline


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


def assign_zones(index: ZoneIndex, trips: list[dict[str, Any]]) -> None:
    """Fill the missing zone ids of canonical trips from their coordinates, in one query for the batch."""
    points = {zone: ([t[lon] for t in trips], [t[lat] for t in trips]) for zone, (lon, lat) in s.ZONE_POINTS.items()}
    given = {zone: [t[zone] for t in trips] for zone in s.ZONE_POINTS}
    for zone, ids in fill_zones(index, points, given).items():
        for trip, value in zip(trips, ids.tolist(), strict=True):
            trip[zone] = value


def create_app(
    holder: ModelHolder, api_key: str | None = None, admin_key: str | None = None, zones: ZoneIndex | None = None
) -> FastAPI:
    """The API over a started `ModelHolder`, which it closes when the server stops; with `zones`, trips may
    give coordinates instead of zone ids."""
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
        error = _unreadable(exc.__cause__) if exc.status_code == 400 else exc.detail
        return JSONResponse({"error": error}, status_code=exc.status_code, headers=exc.headers)

    def canonical(model: Served, trips: list[Trip]) -> list[dict[str, Any]]:
        """The trips as the model reads them, zones assigned; a 422 for what this model cannot answer."""
        out = [t.canonical() for t in trips]
        if unzoned := [i for i, c in enumerate(out) if c[s.PU_ZONE] is None or c[s.DO_ZONE] is None]:
            if zones is None:
                raise HTTPException(
                    422, "send pu_location_id and do_location_id: this server has no zone shapes to find them"
                )
            assign_zones(zones, [out[i] for i in unzoned])
            low, high = validation.KNOWN_ZONES
            for i in unzoned:
                for zone, (lon, lat) in s.ZONE_POINTS.items():
                    if not low <= out[i][zone] <= high:
                        refuse(
                            trips,
                            i,
                            lon,
                            f"the point ({out[i][lon]}, {out[i][lat]}) lies in no TLC taxi zone: send "
                            f"{zone}, or a point in New York City",
                            "value_error",
                        )
        if model.needs_distance:
            missing = [i for i, t in enumerate(out) if t[s.DISTANCE] is None]
            if missing:
                refuse(
                    trips,
                    missing[0],
                    s.DISTANCE,
                    f"required: model version {model.version} uses the metered distance "
                    f"(feature set {model.bundle.meta.feature_set})",
                    "missing",
                )
        return out

    async def answer(model: Served, trips: list[Trip]) -> list[Prediction]:
        ready = canonical(model, trips)
        answered = model.predict_remembered(ready) if len(ready) <= INLINE_TRIPS else None
        if answered is None:  # an evaluation of new trips: milliseconds, in a worker thread so others go on
            answered = await anyio.to_thread.run_sync(partial(model.predict, ready), limiter=evaluations[0])
        minutes, low, high = answered
        metrics.trips.inc(len(trips))
        for m in minutes:
            metrics.minutes.observe(m)
        return [
            Prediction(duration_minutes=m, interval=Interval(p10=lo, p90=hi), model_version=model.version)
            for m, lo, hi in zip(_rounded(minutes), _rounded(low), _rounded(high), strict=True)
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
