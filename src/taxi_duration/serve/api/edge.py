"""The edge every HTTP request passes: the body limit and the Prometheus metrics, as a pure ASGI middleware."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import BaseRoute, Match

from taxi_duration.serve.api.schemas import MAX_BATCH

MAX_BODY_BYTES = 1 << 20  # 1 MiB holds a full batch several times over
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
MINUTE_BUCKETS = (2, 5, 10, 15, 20, 30, 45, 60, 90)
UNMATCHED = "unmatched"  # the metrics label of every path no route serves: one label, not one per path


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
        asked = {**scope}  # a mount rewrites the scope's paths for its app: match the request as it came

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
            endpoint = self._template(scope, asked)
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            self.metrics.requests.labels(endpoint, status).inc()

    def _template(self, scope: dict[str, Any], asked: dict[str, Any]) -> str:
        """The route's path template (`/predict`, the docs' assets mount), never the raw path: random paths must
        not each become a metrics label. The router leaves the route it picked in the scope; a mount's files
        and a request refused before routing (413) are matched here, on the scope as the request came."""
        route = scope.get("route") or _matched(self.routes, asked)
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


def _matched(routes: Sequence[BaseRoute], scope: dict[str, Any]) -> BaseRoute | None:
    """The route a request goes to, looked for inside the routers the app includes: FastAPI keeps each included
    router as one route of the app, with no path of its own."""
    for route in routes:
        if route.matches(scope)[0] != Match.NONE:
            router = getattr(route, "original_router", None)
            return route if router is None else _matched(router.routes, scope)
    return None


def _too_large(limit: int) -> str:
    return f"request body over {limit:,} bytes; send at most {MAX_BATCH} trips per batch"
