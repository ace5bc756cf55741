"""The canonical trip table: every column name and type, and the source names that map onto it.

Every reader normalizes into this table and everything downstream reads only these names, so a column
is named here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
PU_LON = "pickup_longitude"
PU_LAT = "pickup_latitude"
DO_LON = "dropoff_longitude"
DO_LAT = "dropoff_latitude"
COORDINATES: tuple[str, ...] = (PU_LON, PU_LAT, DO_LON, DO_LAT)
ZONES: tuple[str, ...] = (PU_ZONE, DO_ZONE)
# Where a file has coordinates instead of zones, each zone comes from its (longitude, latitude).
ZONE_POINTS: dict[str, tuple[str, str]] = {PU_ZONE: (PU_LON, PU_LAT), DO_ZONE: (DO_LON, DO_LAT)}

# Kaggle files give the duration in seconds instead of the dropoff time: the reader rebuilds the dropoff.
DURATION_ALIASES: tuple[str, ...] = ("trip_duration",)

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
    # Text values older files hold in an integer column (2009-2010 yellow: "CMT", "CASH"), upper case.
    codes: Mapping[str, int] = field(default_factory=dict)


# 2009-2010 yellow files name vendors and payment types in text. Vendors take the TLC's later codes;
# DDS (Digital Dispatch Systems) had left before codes were published and takes the next free one.
VENDOR_CODES = {"CMT": 1, "VTS": 2, "DDS": 3}
PAYMENT_CODES = {
    **dict.fromkeys(("CREDIT", "CRD"), 1),
    **dict.fromkeys(("CASH", "CSH"), 2),
    **dict.fromkeys(("NO CHARGE", "NOC"), 3),
    **dict.fromkeys(("DISPUTE", "DIS"), 4),
    "UNK": 5,
}


# Source names are matched case-insensitively and without surrounding spaces, so `Airport_fee` and
# `airport_fee` are one alias, and 2014 yellow headers (" pickup_datetime") match.
COLUMNS: tuple[Column, ...] = (
    Column(
        PICKUP,
        nw.Datetime("us"),
        ("tpep_pickup_datetime", "lpep_pickup_datetime", "pickup_datetime", "Trip_Pickup_DateTime"),
        required=True,
        doc="meter engaged (local NYC time, no zone)",
    ),
    Column(
        DROPOFF,
        nw.Datetime("us"),
        ("tpep_dropoff_datetime", "lpep_dropoff_datetime", "dropoff_datetime", "Trip_Dropoff_DateTime"),
        required=True,
        doc="meter disengaged",
    ),
    Column(
        PU_ZONE,
        nw.Int32(),
        ("PULocationID", "pu_location_id"),
        required=True,
        doc="TLC pickup zone (from the coordinates when a file has none)",
    ),
    Column(DO_ZONE, nw.Int32(), ("DOLocationID", "do_location_id"), required=True, doc="TLC dropoff zone"),
    Column(PASSENGERS, nw.Int32(), ("passenger_count",), doc="driver-entered passenger count"),
    Column(DISTANCE, nw.Float64(), ("trip_distance",), doc="taximeter miles (Kaggle files have none)"),
    Column(VENDOR, nw.Int32(), ("VendorID", "vendor_id", "vendor_name"), doc="technology provider", codes=VENDOR_CODES),
    Column(RATECODE, nw.Int32(), ("RatecodeID", "ratecode_id", "rate_code"), doc="final rate code"),
    Column(PAYMENT, nw.Int32(), ("payment_type",), doc="how the rider paid", codes=PAYMENT_CODES),
    Column(FARE, nw.Float64(), ("fare_amount", "Fare_Amt"), doc="time-and-distance fare, USD"),
    Column(PU_LON, nw.Float64(), (PU_LON, "Start_Lon"), doc="pickup longitude, WGS84 (2009-2016 files, Kaggle)"),
    Column(PU_LAT, nw.Float64(), (PU_LAT, "Start_Lat"), doc="pickup latitude"),
    Column(DO_LON, nw.Float64(), (DO_LON, "End_Lon"), doc="dropoff longitude"),
    Column(DO_LAT, nw.Float64(), (DO_LAT, "End_Lat"), doc="dropoff latitude"),
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

# What every trip needs after reading: a file may give the dropoff as a duration and the zones as
# coordinates (`missing_required`).
REQUIRED: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)

# Filled by the reader from the file name, never read from a column of a TLC file.
PROVENANCE: tuple[str, ...] = (SERVICE, SOURCE_FILE, SOURCE_MONTH)

SERVICES: tuple[str, ...] = ("yellow", "green", "fhv")


def resolve_aliases(source_columns: list[str]) -> dict[str, str]:
    """Map canonical names to the source column that holds each one (case-insensitive).

    Columns with no match are absent from the result; the reader fills them with nulls.
    """
    by_lower = {c.strip().lower(): c for c in source_columns}
    found: dict[str, str] = {}
    for col in COLUMNS:
        for alias in col.aliases:
            if alias.lower() in by_lower:
                found[col.name] = by_lower[alias.lower()]
                break
    return found


def duration_source(source_columns: list[str] | tuple[str, ...]) -> str | None:
    """The source column holding the trip duration in seconds (Kaggle), if any."""
    by_lower = {c.strip().lower(): c for c in source_columns}
    return next((by_lower[a] for a in DURATION_ALIASES if a in by_lower), None)


def zones_from_coordinates(source_columns: list[str] | tuple[str, ...]) -> bool:
    """True when a file gives coordinates, not zone ids: its zones are assigned from the TLC shapes."""
    found = resolve_aliases(list(source_columns))
    return not any(z in found for z in ZONES) and all(c in found for c in COORDINATES)


def missing_required(source_columns: list[str] | tuple[str, ...]) -> list[str]:
    """What a file lacks to be trip data, each as the source names that would do; empty when nothing.

    A file with coordinates may lack the dropoff and its duration: the Kaggle test file is trips to
    predict. It reads, and validation quarantines its rows as unlabeled (`missing_required`).
    """
    found = resolve_aliases(list(source_columns))
    coordinates = zones_from_coordinates(source_columns)
    missing = []
    for name in REQUIRED:
        if name in found or (name in ZONES and coordinates):
            continue
        if name == DROPOFF and (duration_source(source_columns) or coordinates):
            continue
        wanted = " or ".join(BY_NAME[name].aliases)
        if name == DROPOFF:
            wanted += f", or a duration in seconds ({' or '.join(DURATION_ALIASES)})"
        elif name in ZONES:
            wanted += (
                ", or all four coordinates (" + ", ".join(" / ".join(BY_NAME[c].aliases) for c in COORDINATES) + ")"
            )
        missing.append(f"{name} (as {wanted})")
    if DISTANCE not in found and not coordinates:
        # Durations are learned from how far a trip goes: a metered distance, or the coordinates' straight line.
        missing.append(f"{DISTANCE} (as {' or '.join(BY_NAME[DISTANCE].aliases)}, or coordinates)")
    return missing


# The rest of a TLC trip record (yellow and green data dictionaries), which no reader keeps: the API accepts
# and ignores them, so a whole record can be sent as it is, while a misspelt name is refused as unknown.
TLC_RECORD_EXTRAS = (
    "store_and_fwd_flag",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "ehail_fee",
    "improvement_surcharge",
    "total_amount",
    "trip_type",
    "congestion_surcharge",
    "airport_fee",
    "Airport_fee",
    "cbd_congestion_fee",
)
