"""The stream's input: admitted JSON lines as a streaming frame of decoded trip events, redeliveries dropped.

The JVM splits lines, parses JSON (every field as text, under its TLC or canonical names) and drops a
`trip_id` taken again within the watermark of its first arrival, with its state in the checkpoint. A line that
cannot reach the scorer (not UTF-8, not a JSON object, no trip_id) keeps its reason and goes to quarantine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taxi_duration.core import schema as s
from taxi_duration.ingest.validation import UNREADABLE_LINE, missing
from taxi_duration.stream.landing import PART_NAME

TRIP_ID = "trip_id"
RAW, FILE, REASON = "raw_line", "file", "reason"
# What an event may carry: the fields of a trip request (`/predict`), under any of their TLC or canonical names.
EVENT_FIELDS: tuple[str, ...] = (s.PICKUP, *s.ZONES, s.PASSENGERS, s.DISTANCE, s.VENDOR, *s.COORDINATES)
PICKUP_TEXT = "_pickup_text"  # the pickup as the event gave it: read as the scorer reads it, on the driver
_INTEGER = {c for c in EVENT_FIELDS if s.BY_NAME[c].dtype.is_integer()}
_ARRIVED = "_arrived"
_CORRUPT = "_corrupt_record"


def events(spark: Any, admitted: Path, landing: Path, watermark: str, max_files: int) -> Any:
    """The streaming frame of admitted events, one row per non-blank line: the raw line, the landed file it
    came from, a reason when it cannot reach the scorer (not UTF-8, not a JSON object, no trip_id), the trip_id
    and the request fields (canonical names; the pickup as text), with redelivered trip_ids dropped within
    the watermark of their arrival."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    names = [TRIP_ID, *dict.fromkeys(a for c in EVENT_FIELDS for a in (c, *s.BY_NAME[c].aliases))]
    # Every field as text: a JSON number keeps its digits, and one mistyped field cannot null the others.
    shape = StructType([StructField(n, StringType()) for n in [*names, _CORRUPT]])
    part = F.col("_metadata.file_name")
    lines = (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", max_files)
        .load(str(admitted))
        .select(
            F.col("value").alias(RAW),
            # The landed file a part came from: the name after the part's sequence number.
            F.concat(F.lit(f"{landing.resolve()}/"), F.regexp_extract(part, PART_NAME, 2)).alias(FILE),
        )
        .where(F.trim(RAW) != "")
    )
    parsed = lines.withColumn("e", F.from_json(RAW, shape, {"columnNameOfCorruptRecord": _CORRUPT}))
    is_object = F.is_valid_utf8(RAW) & F.ltrim(RAW).startswith("{") & F.col(f"e.{_CORRUPT}").isNull()
    trip_id = F.trim(F.col(f"e.{TRIP_ID}"))

    def text(column: str) -> Any:
        return F.coalesce(*(F.col(f"e.`{a}`") for a in dict.fromkeys((column, *s.BY_NAME[column].aliases))))

    def number(column: str) -> Any:
        given = text(column)
        # Spaces around a number make it no number, as the API says ("  74  " is a client bug, not zone 74).
        value = F.when(given == F.trim(given), given.try_cast("double"))
        # A whole number where the schema holds an integer, else absent: 74.5 is no zone id.
        return F.when(value == F.floor(value), value.try_cast("int")) if column in _INTEGER else value

    reason = F.when(~is_object, F.lit(UNREADABLE_LINE)).when(
        trip_id.isNull() | (trip_id == ""), F.lit(missing(TRIP_ID))
    )
    rows = parsed.select(
        RAW,
        FILE,
        reason.alias(REASON),
        F.when(is_object, trip_id).alias(TRIP_ID),
        F.when(is_object, text(s.PICKUP)).alias(PICKUP_TEXT),
        *[F.when(is_object, number(c)).alias(c) for c in EVENT_FIELDS if c != s.PICKUP],
        # The watermark's clock is the batch's own time (fixed in the offsets log, so a re-run batch keeps it),
        # not the pickup: an event is never late, whatever order the files or their events come in, and a
        # redelivery is recognised within the watermark of its first arrival.
        F.current_timestamp().alias(_ARRIVED),
    )
    # Lines without a trip_id have nothing to deduplicate by: they go straight to the sink to be quarantined.
    keyed = rows.where(F.col(REASON).isNull())
    unique = keyed.withWatermark(_ARRIVED, watermark).dropDuplicatesWithinWatermark([TRIP_ID])
    return unique.unionByName(rows.where(F.col(REASON).isNotNull())).drop(_ARRIVED)
