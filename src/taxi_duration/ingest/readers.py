"""Reading trip files of any known variant into the canonical trip table, on any engine.

Each file is scanned on its own and normalized (renamed, cast, missing columns filled with nulls) before
the files are stacked, so files of different eras never meet with different schemas: that is what lets
Spark read 2021 (int64 ids, double counts) and 2023 (int32 ids, int64 counts) files together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import narwhals as nw
from narwhals.dtypes import DType

from taxi_duration.core import schema
from taxi_duration.engines.frames import Runtime, with_null_columns
from taxi_duration.geo.shapes import load_index
from taxi_duration.ingest.inputs import InputFile, readable_lines

# Text timestamps in TLC CSVs and JSON events: `2023-01-01 08:15:00`, `2023-01-01T08:15:00[.fff][Z]`.
# All are cut to the first 19 characters in one shape, so every engine parses them with one format: the
# canonical table holds whole seconds, as TLC files do.
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DURATION = "_duration_s"


def read_trips(runtime: Runtime, files: list[InputFile]) -> nw.LazyFrame[Any]:
    """Scan checked input files into one lazy canonical trip table.

    Files of 0 rows are not scanned (an engine may not even find columns in them); with nothing else to read,
    the table is empty.
    """
    frames = [normalize(runtime, _scan(runtime, f), f) for f in files if f.rows]
    if not frames:
        return runtime.empty({c.name: c.dtype for c in schema.COLUMNS})
    return frames[0] if len(frames) == 1 else nw.concat(frames, how="vertical")


def normalize(runtime: Runtime, frame: nw.LazyFrame[Any], source: InputFile) -> nw.LazyFrame[Any]:
    """Rename and cast one file's columns into the canonical schema, in canonical order.

    A dropoff time the file gives as a duration (Kaggle) is rebuilt as pickup + duration; zones a file gives
    as coordinates (2009-2016 yellow, Kaggle) are assigned from the TLC zone shapes.
    """
    source_types = frame.collect_schema()
    found = schema.resolve_aliases(list(source_types))
    provenance = {
        schema.SERVICE: source.service,
        schema.SOURCE_FILE: source.path.name,
        schema.SOURCE_MONTH: source.month,
    }
    exprs = []
    missing: dict[str, DType] = {}
    for col in schema.COLUMNS:
        if provenance.get(col.name) is not None:
            exprs.append(nw.lit(provenance[col.name], dtype=col.dtype).alias(col.name))
        elif col.name in found and col.name not in provenance:
            cast = _cast(nw.col(found[col.name]), source_types[found[col.name]], col.dtype, source.format, col.codes)
            exprs.append(cast.alias(col.name))
        else:
            missing[col.name] = col.dtype
    duration = schema.duration_source(list(source_types)) if schema.DROPOFF in missing else None
    if duration:
        exprs.append(_cast(nw.col(duration), source_types[duration], nw.Int64(), source.format).alias(_DURATION))
    frame = frame.select(exprs)
    if duration:
        frame = runtime.plus_seconds(frame, schema.PICKUP, _DURATION, schema.DROPOFF).drop(_DURATION)
        del missing[schema.DROPOFF]
    if source.zones_from_coordinates:
        frame = runtime.with_zones(frame, load_index(runtime.shapes), schema.ZONE_POINTS)
        for zone in schema.ZONE_POINTS:
            del missing[zone]
    return with_null_columns(frame, missing).select(schema.NAMES)


def _cast(expr: nw.Expr, source: DType, target: DType, fmt: str, codes: Mapping[str, int] | None = None) -> nw.Expr:
    is_text = source == nw.String
    if target == nw.Datetime:
        if is_text:
            return expr.str.replace_all("T", " ").str.slice(0, 19).str.to_datetime(DATETIME_FORMAT).cast(target)
        if fmt == "json":
            # DuckDB detects timestamps in JSON itself, fractions included; Spark's truncate returns a zoned
            # timestamp, hence the second cast. TLC Parquet files hold whole seconds: no cost there.
            return expr.cast(target).dt.truncate("1s").cast(target)
        return expr.cast(target)
    if target.is_integer() and is_text and codes:
        # Text codes become their numbers as text first, so no engine ever casts "CASH" to a number.
        key = expr.str.strip_chars().str.to_uppercase()
        for text, code in codes.items():
            expr = nw.when(key == text).then(nw.lit(str(code))).otherwise(expr)
    if target.is_integer() and (is_text or source.is_float()):
        # Through a float: "1.0" and 1.0 are valid counts in older files, and no engine casts "1.0" to int.
        return expr.cast(nw.Float64()).cast(target)
    return expr.cast(target)


def _scan(runtime: Runtime, source: InputFile) -> nw.LazyFrame[Any]:
    if source.format == "parquet":
        needed = list(schema.resolve_aliases(list(source.columns)).values())
        if duration := schema.duration_source(source.columns):
            needed.append(duration)
        return runtime.scan_parquet(source.path, columns=needed)
    if source.format == "csv":
        return runtime.scan_csv(source.path, list(source.columns))
    return runtime.scan_json(readable_lines(source, runtime.scratch()))
