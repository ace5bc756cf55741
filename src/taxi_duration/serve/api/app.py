"""The app: its routes, each a few lines over the served model, and how the parts are wired together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from functools import partial
from typing import Any

import anyio
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from swagger_ui_bundle import swagger_ui_path

from taxi_duration import __version__
from taxi_duration.core import schema as s
from taxi_duration.core.config import FeatureSet
from taxi_duration.serve.api.deps import AdminKey, CurrentModels, PredictionKey
from taxi_duration.serve.api.edge import MAX_BODY_BYTES, Edge, Metrics
from taxi_duration.serve.api.errors import ADMIN_REFUSALS, REFUSALS, install, refusal_of, refuse
from taxi_duration.serve.api.schemas import Batch, BatchPrediction, Chosen, Interval, Prediction, Problem, Trip
from taxi_duration.serve.holder import Champions, ModelHolder
from taxi_duration.serve.scorer import Scorer

# Up to this many trips, all answered from the fast path's memory, a prediction takes microseconds and runs
# on the event loop; anything else runs in a worker thread, so no request can hold up the others. Such
# evaluations run one at a time: more threads would not run Python faster under the GIL, only take a
# larger share of it from the event loop.
INLINE_TRIPS = 100
EVALUATIONS_AT_ONCE = 1
DECIMALS = 2  # minutes are answered to the hundredth; more digits than that is noise
DOCS_ASSETS = "/docs-assets"  # Swagger UI's files, served from the installed package: /docs works offline


def _rounded(values: Any) -> list[float]:
    return [round(v, DECIMALS) for v in values.tolist()]


def _asked(champions: Champions, feature_set: FeatureSet) -> Scorer:
    """The served model of the feature set a client asked for, or a 422 naming those served."""
    model = champions.by_feature_set.get(feature_set)
    if model is None:
        served = " and ".join(champions.by_feature_set)
        raise HTTPException(422, f"this server has no {feature_set} model: it serves {served}")
    return model


def create_app(holder: ModelHolder, api_key: str | None = None, admin_key: str | None = None) -> FastAPI:
    """The API over a started `ModelHolder`, which it closes when the server stops. Every prediction takes
    the scorer's road (`scorer.py`), on the model `Champions` picks for the trip; trips may give coordinates
    instead of zone ids where it has shapes."""
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
    install(app)
    holder.on_reload = lambda status: metrics.reloads.labels(status.outcome).inc()

    served = CurrentModels(holder)

    async def answer(model: Scorer, trips: list[Trip], at: Sequence[int] | None = None) -> list[Prediction]:
        """`model`'s predictions for the trips at positions `at` (all of them by default); a refusal names the
        trip by its position in `trips`."""
        picked = trips if at is None else [trips[i] for i in at]
        ready = [t.canonical() for t in picked]
        if model.zones is None and any(c[s.PU_ZONE] is None or c[s.DO_ZONE] is None for c in ready):
            raise HTTPException(422, f"send {' and '.join(s.ZONES)}: this server has no zone shapes to find them")
        scored = model.score(ready, remembered_only=True) if len(ready) <= INLINE_TRIPS else None
        if scored is None:  # an evaluation of new trips: milliseconds, in a worker thread so others go on
            scored = await anyio.to_thread.run_sync(partial(model.score, ready), limiter=evaluations[0])
        assert scored is not None
        if refused := [(i, r) for i, r in enumerate(scored.reasons) if r is not None]:
            first, reasons = refused[0]
            found = {zone: scored.zones[zone][first] for zone in s.ZONES}
            refuse(trips, first if at is None else at[first], *refusal_of(model, ready[first], reasons, found))
        metrics.trips.inc(len(picked))
        for m in scored.minutes:
            metrics.minutes.observe(m)
        version, alias, feature_set = model.version, model.alias, model.feature_set
        return [
            Prediction(
                duration_minutes=m,
                interval=Interval(p10=lo, p90=hi),
                model_version=version,
                model_alias=alias,
                feature_set=feature_set,
            )
            for m, lo, hi in zip(_rounded(scored.minutes), _rounded(scored.p10), _rounded(scored.p90), strict=True)
        ]

    keyed = [Depends(PredictionKey(api_key))]

    @app.post("/predict", response_model=Prediction, dependencies=keyed, tags=["predictions"], responses=REFUSALS)
    async def predict(trip: Trip, feature_set: Chosen = None) -> Prediction:
        """Predict one trip's duration in minutes, with the p10-p90 interval and the model that answered."""
        champions = served()
        if feature_set is None:
            return (await answer(champions.pick(trip.trip_distance is not None), [trip]))[0]
        return (await answer(_asked(champions, feature_set), [trip]))[0]

    @app.post(
        "/predict/batch", response_model=BatchPrediction, dependencies=keyed, tags=["predictions"], responses=REFUSALS
    )
    async def predict_batch(batch: Batch, feature_set: Chosen = None) -> BatchPrediction:
        """Predict up to 1000 trips at once; predictions come back in the order sent, each naming its model."""
        champions, trips = served(), batch.trips
        if feature_set is not None:
            predictions = await answer(_asked(champions, feature_set), trips)
        else:
            placed: dict[int, Prediction] = {}
            for model, rows in champions.split([t.trip_distance is not None for t in trips]):
                at = rows.tolist()
                placed.update(zip(at, await answer(model, trips, at), strict=True))
            predictions = [placed[i] for i in range(len(trips))]
        versions = ",".join(dict.fromkeys(p.model_version for p in predictions))
        return BatchPrediction(predictions=predictions, model_version=versions)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], responses={503: REFUSALS[503]})
    async def ready() -> dict[str, Any]:
        """Readiness: a checked model is loaded (503 otherwise)."""
        return {"status": "ready", "model_version": served().default.version}

    for probe in (health, ready):  # probes may ask with HEAD; kept out of the spec, whose ids must be unique
        app.add_api_route(f"/{probe.__name__}", probe, methods=["HEAD"], include_in_schema=False)

    @app.get("/model", dependencies=keyed, tags=["operations"], responses=REFUSALS)
    async def model_info() -> dict[str, Any]:
        """The served model (the one trips with a distance go to): alias, version, feature set, training window,
        validation metrics, last reload; and under `served`, every model served (with two champions, both)."""
        champions = served()
        return {
            **champions.default.describe(),
            "reload": asdict(holder.status),
            "source": ", ".join(holder.sources),
            "served": [m.describe() for m in champions.models],
        }

    @app.get("/metrics", dependencies=keyed, tags=["operations"], response_class=Response, responses=REFUSALS)
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, predicted durations, model version."""
        if holder.current is not None:
            version = holder.current.default.version
            metrics.version.set(float(version) if version.isdigit() else -1)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/admin/reload", dependencies=[Depends(AdminKey(admin_key))], tags=["operations"], responses=ADMIN_REFUSALS
    )
    def reload() -> dict[str, Any]:
        """Load the versions the model URIs name now; an old one serves until its successor is checked."""
        status = holder.reload()
        if status.outcome == "failed":
            refused = f"version {status.refused}" if status.refused else f"the version {status.source} names"
            still = holder.version_of(status.source or "")
            serving = f"still serving version {still}" if still else f"nothing is served for {status.source} yet"
            raise HTTPException(409, f"refused {refused}: {status.error}; {serving}")
        return {**asdict(status), "model_version": served().default.version}

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
