"""The routes' dependencies: the prediction key, the admin key, and the models being served.

Each is a small class whose instance FastAPI calls (`Depends(PredictionKey(key))`, the pattern FastAPI
documents for a parameterised dependency): the key or the holder it checks is given once, when the app is made.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Header, HTTPException

from taxi_duration.serve.holder import Champions, ModelHolder

KEY_HELP = "The prediction key, when the server has one (TAXI_DURATION_API_KEY)."


def has_key(given: str | None, expected: str) -> bool:
    """Whether the request sent the expected key, compared in constant time so timing reveals nothing of it."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class PredictionKey:
    """Prediction calls: a 401 without the right X-API-Key when the server has a prediction key."""

    def __init__(self, key: str | None) -> None:
        self.key = key

    async def __call__(self, x_api_key: Annotated[str | None, Header(description=KEY_HELP)] = None) -> None:
        if self.key is not None and not has_key(x_api_key, self.key):
            raise HTTPException(401, "missing or wrong X-API-Key for prediction calls")


class AdminKey:
    """Admin calls: off (403) when the server has no admin key, else a 401 without it in X-API-Key."""

    def __init__(self, key: str | None) -> None:
        self.key = key

    async def __call__(self, x_api_key: Annotated[str | None, Header(description="The admin key.")] = None) -> None:
        if self.key is None:
            raise HTTPException(403, "admin calls are off: start the server with TAXI_DURATION_ADMIN_KEY set")
        if not has_key(x_api_key, self.key):
            raise HTTPException(401, "missing or wrong X-API-Key for admin calls")


class CurrentModels:
    """The models the holder serves now, or a 503 while none is loaded."""

    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder

    def __call__(self) -> Champions:
        current = self.holder.current
        if current is None:
            raise HTTPException(503, "no model loaded yet")
        return current
