"""The calls that run the service rather than predict: probes, the model served, Prometheus metrics, reloads."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from taxi_duration.serve.api.deps import Served, ServedModels, admin_key, prediction_key, served_now
from taxi_duration.serve.api.errors import ADMIN_REFUSALS, REFUSALS

probes = APIRouter(tags=["operations"])  # probes carry no key
router = APIRouter(tags=["operations"], dependencies=[Depends(prediction_key)], responses=REFUSALS)
admin = APIRouter(tags=["operations"], dependencies=[Depends(admin_key)], responses=ADMIN_REFUSALS)


@probes.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@probes.get("/ready", responses={503: REFUSALS[503]})
async def ready(champions: ServedModels) -> dict[str, Any]:
    """Readiness: a checked model is loaded (503 otherwise)."""
    return {"status": "ready", "model_version": champions.default.version}


for probe in (health, ready):  # probes may ask with HEAD; kept out of the spec, whose ids must be unique
    probes.add_api_route(f"/{probe.__name__}", probe, methods=["HEAD"], include_in_schema=False)


@router.get("/model")
async def model_info(served: Served, champions: ServedModels) -> dict[str, Any]:
    """The served model (the one trips with a distance go to): alias, version, feature set, training window,
    validation metrics, last reload; and under `served`, every model served (with two champions, both)."""
    return {
        **champions.default.describe(),
        "reload": asdict(served.holder.status),
        "source": ", ".join(served.holder.sources),
        "served": [m.describe() for m in champions.models],
    }


@router.get("/metrics", response_class=Response)
async def prometheus(served: Served) -> Response:
    """Prometheus metrics: requests, latency, predicted durations, model version."""
    holder, metrics = served.holder, served.metrics
    if holder.current is not None:
        version = holder.current.default.version
        metrics.version.set(float(version) if version.isdigit() else -1)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@admin.post("/admin/reload")
def reload(served: Served) -> dict[str, Any]:
    """Load the versions the model URIs name now; an old one serves until its successor is checked."""
    holder = served.holder
    status = holder.reload()
    if status.outcome == "failed":
        refused = f"version {status.refused}" if status.refused else f"the version {status.source} names"
        still = holder.version_of(status.source or "")
        serving = f"still serving version {still}" if still else f"nothing is served for {status.source} yet"
        raise HTTPException(409, f"refused {refused}: {status.error}; {serving}")
    return {**asdict(status), "model_version": served_now(holder).default.version}
