"""The canonical trip table: every column name and type, and the source names that map onto it.

Every reader normalizes into this table and everything downstream reads only these names, so a column
is named here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import narwhals as nw
from narwhals.dtypes import DType

PICKUP = "pickup_datetime"
DROPOFF = "dropoff_datetime"
PU_ZONE = "pu_location_id"
DO_ZONE = "do_location_id"
PASSENGERS = "passenger_count"
DISTANCE = "trip_distance"
VENDOR = "vendor_id"
RATECODE = "ratecode_id"
PAYMENT = "payment_type"
FARE = "fare_amount"
SERVICE = "service"
SOURCE_FILE = "source_file"
SOURCE_MONTH = "source_month"

# TLC timestamps carry no zone: they are New York wall-clock time. A time that does carry one (an API
# request, an event) is converted to this zone and its offset dropped.
TIME_ZONE = "America/New_York"

# Added by validation: comma-separated reason codes, null for a clean row.
REASONS = "reasons"


@dataclass(frozen=True)
class Column:
    """One canonical column: its type, the names it has in source files, and whether a trip needs it."""

    name: str
    dtype: DType
    aliases: tuple[str, ...] = ()
    required: bool = False
    doc: str = ""


# Source names are matched case-insensitively, so `Airport_fee` and `airport_fee` are one alias.
COLUMNS: tuple[Column, ...] = (
    Column(
        PICKUP,
        nw.Datetime("us"),
        ("tpep_pickup_datetime", "lpep_pickup_datetime", "pickup_datetime"),
        required=True,
        doc="meter engaged (local NYC time, no zone)",
    ),
    Column(
        DROPOFF,
        nw.Datetime("us"),
        ("tpep_dropoff_datetime", "lpep_dropoff_datetime", "dropoff_datetime"),
        required=True,
        doc="meter disengaged",
    ),
    Column(PU_ZONE, nw.Int32(), ("PULocationID", "pu_location_id"), required=True, doc="TLC pickup zone"),
    Column(DO_ZONE, nw.Int32(), ("DOLocationID", "do_location_id"), required=True, doc="TLC dropoff zone"),
    Column(PASSENGERS, nw.Int32(), ("passenger_count",), doc="driver-entered passenger count"),
    Column(DISTANCE, nw.Float64(), ("trip_distance",), required=True, doc="taximeter miles"),
    Column(VENDOR, nw.Int32(), ("VendorID", "vendor_id"), doc="technology provider"),
    Column(RATECODE, nw.Int32(), ("RatecodeID", "ratecode_id"), doc="final rate code"),
    Column(PAYMENT, nw.Int32(), ("payment_type",), doc="how the rider paid"),
    Column(FARE, nw.Float64(), ("fare_amount",), doc="time-and-distance fare, USD"),
    Column(SERVICE, nw.String(), ("service",), doc="yellow, green or fhv"),
    Column(SOURCE_FILE, nw.String(), ("source_file",), doc="file the row was read from (name only)"),
    Column(
        SOURCE_MONTH,
        nw.Int32(),
        ("source_month",),
        doc="YYYYMM the file claims to hold, from its name; null when the name has none",
    ),
)

NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
# Columns that come from the trip itself, not from where it was read: two rows equal on all of these are
# the same trip recorded twice.
TRIP_FIELDS: tuple[str, ...] = tuple(n for n in NAMES if n not in (SERVICE, SOURCE_FILE, SOURCE_MONTH))

# The one set of columns a file must have to be trip data at all.
REQUIRED: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)

# Filled by the reader from the file name, never read from a column of a TLC file.
PROVENANCE: tuple[str, ...] = (SERVICE, SOURCE_FILE, SOURCE_MONTH)

SERVICES: tuple[str, ...] = ("yellow", "green", "fhv")


def resolve_aliases(source_columns: list[str]) -> dict[str, str]:
    """Map canonical names to the source column that holds each one (case-insensitive).

    Columns with no match are absent from the result; the reader fills them with nulls.
    """
    by_lower = {c.lower(): c for c in source_columns}
    found: dict[str, str] = {}
    for col in COLUMNS:
        for alias in col.aliases:
            if alias.lower() in by_lower:
                found[col.name] = by_lower[alias.lower()]
                break
    return found
