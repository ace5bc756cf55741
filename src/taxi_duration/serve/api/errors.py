"""Refusals: what each 4xx means in the OpenAPI document, and the handlers that give every one a body
naming what was wrong (`{"error": ..., "problems": [...]}`) instead of FastAPI's own."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taxi_duration.core import schema as s
from taxi_duration.ingest import validation
from taxi_duration.serve.api.edge import MAX_BODY_BYTES
from taxi_duration.serve.api.schemas import Refusal, Trip
from taxi_duration.serve.scorer import Scorer


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


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A 422 naming every wrong field, and the Content-Type when a body that is not JSON is the cause."""
    error = f"invalid request to {request.url.path}"
    if "json" not in request.headers.get("content-type", ""):
        error += ": send a JSON object with Content-Type: application/json"
    body = {"error": error, "problems": _problems(exc)}
    return JSONResponse(body, status_code=422)


async def refused(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Any other refusal as `{"error": ...}`; a 400 says why the body could not be read."""
    error = _unreadable(exc.__cause__) if exc.status_code == 400 else exc.detail
    return JSONResponse({"error": error}, status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Answer invalid requests (422) and every other refusal with the bodies above."""
    # The decorator, called: `add_exception_handler` is typed for handlers of any `Exception`, not of one class.
    app.exception_handler(RequestValidationError)(invalid)
    app.exception_handler(StarletteHTTPException)(refused)


def refuse(trips: list[Trip], i: int, field: str, message: str, kind: str) -> NoReturn:
    """Raise the 422 for one field of trip `i` (the field alone for a single trip)."""
    where = (field,) if len(trips) == 1 else ("trips", str(i), field)
    raise RequestValidationError([{"loc": ("body", *where), "msg": message, "type": kind}])


def refusal_of(model: Scorer, trip: dict[str, Any], reasons: str, found: dict[str, Any]) -> tuple[str, str, str]:
    """(field, message, kind) of the 422 for a trip the scorer refused (`found`: its zone ids). The request
    schema has checked every bound already, so what is left is a point outside every zone or a distance
    this model needs."""
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
