"""The routes' dependencies: what the app serves, the prediction key, the admin key, and the models being served.

`create_app` keeps one `Serving` on the app; each route asks for what it needs by a typed alias
(`champions: ServedModels`), the FastAPI full-stack template's pattern. Every dependency is a coroutine:
FastAPI runs a plain function in a worker thread, which would cost more per request than the model does.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, cast

import anyio
from fastapi import Depends, Header, HTTPException, Request

from taxi_duration.serve.api.edge import Metrics
from taxi_duration.serve.holder import Champions, ModelHolder

KEY_HELP = "The prediction key, when the server has one (TAXI_DURATION_API_KEY)."


@dataclass
class Serving:
    """What the routes of one app share: the started holder, the keys, the metrics, and the limiter of
    evaluations in worker threads (made in the app's lifespan, once the event loop runs)."""

    holder: ModelHolder
    metrics: Metrics
    api_key: str | None = None
    admin_key: str | None = None
    evaluations: anyio.CapacityLimiter | None = None


async def serving(request: Request) -> Serving:
    """The app's `Serving`."""
    return cast(Serving, request.app.state.serving)


Served = Annotated[Serving, Depends(serving)]


def has_key(given: str | None, expected: str) -> bool:
    """Whether the request sent the expected key, compared in constant time so timing reveals nothing of it."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def prediction_key(served: Served, x_api_key: Annotated[str | None, Header(description=KEY_HELP)] = None) -> None:
    """Prediction calls: a 401 without the right X-API-Key when the server has a prediction key."""
    if served.api_key is not None and not has_key(x_api_key, served.api_key):
        raise HTTPException(401, "missing or wrong X-API-Key for prediction calls")


async def admin_key(
    served: Served, x_api_key: Annotated[str | None, Header(description="The admin key.")] = None
) -> None:
    """Admin calls: off (403) when the server has no admin key, else a 401 without it in X-API-Key."""
    if served.admin_key is None:
        raise HTTPException(403, "admin calls are off: start the server with TAXI_DURATION_ADMIN_KEY set")
    if not has_key(x_api_key, served.admin_key):
        raise HTTPException(401, "missing or wrong X-API-Key for admin calls")


def served_now(holder: ModelHolder) -> Champions:
    """The models the holder serves now, or a 503 while none is loaded."""
    if holder.current is None:
        raise HTTPException(503, "no model loaded yet")
    return holder.current


async def current_models(served: Served) -> Champions:
    """`served_now`, as a dependency."""
    return served_now(served.holder)


ServedModels = Annotated[Champions, Depends(current_models)]
