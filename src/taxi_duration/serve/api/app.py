"""The app: the parts wired together (the edge, the refusal handlers, the routes) over a started holder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from taxi_duration import __version__
from taxi_duration.serve.api import errors
from taxi_duration.serve.api.deps import Serving
from taxi_duration.serve.api.edge import MAX_BODY_BYTES, Edge, Metrics
from taxi_duration.serve.api.routes import docs, operations, predictions
from taxi_duration.serve.api.routes.docs import DOCS_ASSETS
from taxi_duration.serve.api.schemas import Problem
from taxi_duration.serve.holder import ModelHolder


def create_app(holder: ModelHolder, api_key: str | None = None, admin_key: str | None = None) -> FastAPI:
    """The API over a started `ModelHolder`, which it closes when the server stops. Every prediction takes
    the scorer's road (`scorer.py`), on the model `Champions` picks for the trip; trips may give coordinates
    instead of zone ids where it has shapes."""
    serving = Serving(holder, Metrics(), api_key, admin_key)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        serving.evaluations = anyio.CapacityLimiter(predictions.EVALUATIONS_AT_ONCE)
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
    app.state.serving = serving
    app.add_middleware(Edge, limit=MAX_BODY_BYTES, metrics=serving.metrics, routes=app.routes)
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    errors.install(app)
    holder.on_reload = lambda status: serving.metrics.reloads.labels(status.outcome).inc()
    for router in (predictions.router, operations.probes, operations.router, operations.admin, docs.router):
        app.include_router(router)
    return app
