"""What a request may send and what it gets back: the pydantic models behind the OpenAPI schema.

A trip is checked here, field by field, before it reaches the model: names the API does not know, two
spellings that disagree, JSON true/false for a number, a pickup outside the TLC's years are each refused
with the field named.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from taxi_duration.core import schema as s
from taxi_duration.core.config import FeatureSet
from taxi_duration.ingest import validation
from taxi_duration.ingest.validation import FIRST_DAY, MAX_DISTANCE_MI, MAX_PASSENGERS, NEW_YORK

MAX_BATCH = 1000
PICKUP_RANGE = f"must lie between {FIRST_DAY} (the first TLC records) and a year from today"  # `booking_window`
SHOWN_NAME = 64  # characters of an unknown field's name an error repeats
# Numeric fields, where JSON true/false must not pass as 1/0.
NUMBERS = ("pu_location_id", "do_location_id", "passenger_count", "trip_distance", "vendor_id", *s.COORDINATES)

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
            (_shown(name), "unknown field" + "".join(f"; did you mean {m}?" for m in _close(name)))
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
        # JSON true and false would pass as 1 and 0, and pydantic strips the spaces of "  74  ": client bugs
        # to refuse, not numbers to read.
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        if isinstance(value, str) and value != value.strip():
            raise ValueError("must be a number, without spaces around it")
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
        if value.tzinfo is not None:
            try:
                value = value.astimezone(NEW_YORK).replace(tzinfo=None)
            except OverflowError:  # year 1 or 9999 with an offset: outside any calendar Python keeps
                raise ValueError(PICKUP_RANGE) from None
        if not validation.booking_window().holds(value.date()):
            raise ValueError(PICKUP_RANGE)
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


def _shown(name: str) -> str:
    """A field name as an error names it: a huge one cut, so a 422 never echoes a megabyte back."""
    return name if len(name) <= SHOWN_NAME else f"{name[:SHOWN_NAME]}... ({len(name):,} characters)"


def _close(name: str) -> list[str]:
    """The known name a misspelt one is closest to; none for a name too long to be a misspelling (and slow)."""
    return difflib.get_close_matches(name, READ, 1) if len(name) <= SHOWN_NAME else []


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
    """A predicted duration, in minutes to the hundredth, and the model that answered."""

    duration_minutes: float
    interval: Interval
    model_version: str
    model_alias: str | None = Field(
        description="The registry alias the model was served by (`champion`, `champion-pretrip`); null for a "
        "server started on a pinned version."
    )
    feature_set: str = Field(description="What the model knows: `with_distance` (the metered distance) or `pretrip`.")


class BatchPrediction(BaseModel):
    """One prediction per trip, in the order sent."""

    predictions: list[Prediction]
    model_version: str = Field(
        description="The version that answered; when trips with and without a distance went to two champions, "
        "both, comma-separated in the order of the trips (each prediction names its own)."
    )


# The explicit choice of a model, where the trip's distance would choose otherwise (`serving.Champions`).
Chosen = Annotated[
    FeatureSet | None,
    Query(
        description="The feature set of the model to answer: `pretrip` or `with_distance`. By default a trip with "
        "`trip_distance` goes to the `with_distance` champion and one without to the `pretrip` champion, when the "
        "server has both."
    ),
]


class Problem(BaseModel):
    """What was wrong with a request."""

    error: str
    problems: list[dict[str, Any]] = []


class Refusal(BaseModel):
    """Why a request was refused."""

    error: str
