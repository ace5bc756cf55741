"""Refusals: what each 4xx means in the OpenAPI document, the handlers that give every one a body naming what
was wrong (`{"error": ..., "problems": [...]}`) instead of FastAPI's own, and the table that turns each reason
the scorer refuses a trip for into its 422 (`REFUSAL_OF`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taxi_duration.core import schema as s
from taxi_duration.ingest import validation
from taxi_duration.serve.api.edge import MAX_BODY_BYTES
from taxi_duration.serve.api.schemas import PICKUP_RANGE, Refusal, Trip
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


@dataclass(frozen=True)
class Refused:
    """A trip the scorer refused: the model that did, the trip as sent (canonical names, zones as given) and
    its zone ids as the scorer saw them (given, or found from its points; NaN for none)."""

    model: Scorer
    trip: dict[str, Any]
    zones: dict[str, float]


Explained = tuple[str, str, str]  # (field, message, kind) of a 422


def _required(column: str) -> Callable[[Refused], Explained]:
    return lambda refused: (column, "required", "missing")


def _needs_distance(refused: Refused) -> Explained:
    model = refused.model
    message = f"required: model version {model.version} uses the metered distance (feature set {model.feature_set})"
    return s.DISTANCE, message, "missing"


def _outside(code: str) -> Callable[[Refused], Explained]:
    """The field of the trip outside the bound `code` declares, and the bound in words."""
    bound = validation.REQUEST_BOUNDS[code]
    limits = [f"{'greater than' if bound.low_open else 'at least'} {bound.low:g}"] if bound.low is not None else []
    limits += [f"at most {bound.high:g}"] if bound.high is not None else []

    def explain(refused: Refused) -> Explained:
        field = next(c for c in bound.columns if bound.broken_by({c: refused.trip.get(c)}))
        return field, f"must be {' and '.join(limits)}", "value_error"

    return explain


def _no_zone(refused: Refused) -> Explained:
    """A zone id outside the TLC's zones: as sent (the schema's bounds catch that first), or found from a point
    that lies in no zone."""
    low, high = validation.KNOWN_ZONES
    zone = next(z for z in s.ZONES if not low <= refused.zones[z] <= high)
    if refused.trip.get(zone) is not None:
        return zone, f"must be a TLC taxi zone id, {low}-{high}", "value_error"
    lon, lat = s.ZONE_POINTS[zone]
    point = f"({refused.trip[lon]}, {refused.trip[lat]})"
    return lon, f"the point {point} lies in no TLC taxi zone: send {zone}, or a point in New York City", "value_error"


# The 422 of each reason the scorer may refuse a request for (`validation.REQUEST_CODES`; a test holds every
# code to an entry). A trip refused for several reasons gets the first entry's: the schema has checked every
# bound already, so what is left is a distance the model needs or a point outside every zone.
REFUSAL_OF: dict[str, Callable[[Refused], Explained]] = {
    validation.missing(s.DISTANCE): _needs_distance,
    "unknown_zone": _no_zone,
    **{validation.missing(c): _required(c) for c in validation.REQUIRABLE if c != s.DISTANCE},
    validation.BOOKING_OUT_OF_RANGE: lambda refused: (s.PICKUP, PICKUP_RANGE, "value_error"),
    "non_positive_distance": _outside("non_positive_distance"),
    "huge_distance": _outside("huge_distance"),
    "bad_passenger_count": _outside("bad_passenger_count"),
}


def refusal_of(refused: Refused, reasons: str) -> Explained:
    """(field, message, kind) of the 422 for a trip refused for `reasons` (comma-joined codes)."""
    code = min(validation.split_codes(reasons), key=list(REFUSAL_OF).index)
    return REFUSAL_OF[code](refused)
