"""Finding input files and checking each one before any engine reads it.

The check is engine-independent and cheap (Parquet: the footer only; CSV and JSON lines: one streaming
pass). It turns every kind of bad file into one clear `BadInputError` naming the file, and it counts the
rows of each file, so the validator can prove that every input row came out somewhere.

An empty file is valid: no bytes at all, a CSV header with no rows, a Parquet file of 0 rows, or JSON lines
with no line: it holds 0 trips. A JSON-lines file is events appended one by one, so one garbage line (a
crashed writer, a truncated append) must not cost the others: lines that are not a JSON object are kept
aside by number and reason (`bad_lines`), and the validator quarantines them. A JSON-lines file is refused
whole only when it has lines and none of them is a JSON object: then it is not JSON lines at all.
"""

from __future__ import annotations

import csv
import glob
import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_duration.core import schema
from taxi_duration.core.errors import BadInputError, UsageError
from taxi_duration.core.months import Month, month_in_name
from taxi_duration.core.storage import HadoopPath, Location, location
from taxi_duration.core.storage import glob as storage_glob

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
# A file named without a month belongs to the month of at least this share of its pickups: a TLC month
# holds a few stray pickups of other months (at most 0.04% in the green months of ../shared/data).
MONTH_SHARE = 0.9


@dataclass(frozen=True)
class BadLine:
    """A JSON-lines line that is not a JSON object: its number (from 1) and why."""

    line: int
    reason: str


@dataclass(frozen=True)
class InputFile:
    """One checked input file."""

    path: Location  # a HadoopPath on the Spark path: `str()` is what Spark reads
    format: str
    rows: int  # the rows an engine reads: for JSON lines, the lines that are JSON objects
    columns: tuple[str, ...]
    service: str | None
    month: int | None  # YYYYMM: the file name's, else the month most of its pickups fall in (Parquet)
    bad_lines: tuple[BadLine, ...] = ()  # JSON lines only; quarantined by the validator

    @property
    def zones_from_coordinates(self) -> bool:
        """True when the file gives coordinates, not zone ids."""
        return schema.zones_from_coordinates(self.columns)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, as the quality report lists it (bad lines counted, not listed)."""
        described = {**asdict(self), "path": str(self.path), "columns": list(self.columns)}
        return described | {"bad_lines": len(self.bad_lines)}


def discover(specs: Sequence[str | Path], spark: SparkSession | None = None) -> list[Location]:
    """Expand files, globs and folders (their trip files, not recursive) into a sorted list of files: local
    paths, or with `spark` any location its Hadoop filesystems read (`storage.py`).

    Raises:
        UsageError: a spec matches nothing, or a file has an extension no reader handles.
    """
    found: list[Location] = []
    for spec in specs:
        path = location(spec, spark)
        files: list[Location]
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS and not p.name.startswith("."))
            if not files:
                raise UsageError(f"{path}: folder holds no trip files ({', '.join(sorted(FORMATS))})")
        elif path.is_file():
            files = [path]
        else:
            matches = storage_glob(path) if isinstance(path, HadoopPath) else map(Path, sorted(glob.glob(str(path))))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise UsageError(f"{spec}: no such file, folder or matching glob")
        for f in files:
            if f.suffix.lower() not in FORMATS:
                raise UsageError(f"{f}: unsupported file type {f.suffix!r} (expected one of {', '.join(FORMATS)})")
        found.extend(files)
    unique = sorted(dict.fromkeys(p.resolve() for p in found))
    names = [p.name for p in unique]
    if clashes := sorted({n for n in names if names.count(n) > 1}):
        # Rows carry the file name as their provenance, so two files of one name could not be told apart.
        raise UsageError(f"several inputs are named {', '.join(clashes)}: rename or pass one of them")
    return unique


def check(path: Location) -> InputFile:
    """Check that `path` holds trip data and count its rows, or raise `BadInputError` saying why not."""
    fmt = FORMATS[path.suffix.lower()]
    bad_lines: tuple[BadLine, ...] = ()
    if path.stat().st_size == 0:
        columns: list[str] = []
        rows = 0  # nothing to check: an empty file holds no trips
    elif fmt == "json":
        columns, rows, bad_lines = _check_json(path)
    else:
        columns, rows = {"parquet": _check_parquet, "csv": _check_csv}[fmt](path)
    # A file with no column at all and no row (no bytes, blank JSON lines) is empty, not foreign data.
    if (columns or rows) and (missing := schema.missing_required(columns)):
        raise BadInputError(path, f"not trip data: missing required column(s) {'; '.join(missing)}")
    month = month_in_name(path.name)
    if month is None and fmt == "parquet" and rows:
        month = pickup_month(path, columns)
    service = _service(path.name, columns)
    return InputFile(path, fmt, rows, tuple(columns), service, month.yyyymm if month else None, bad_lines)


def pickup_month(path: Location, columns: Sequence[str]) -> Month | None:
    """The month a Parquet file's trips belong to when its name gives none: the month of at least
    MONTH_SHARE of its pickups (a TLC month holds a few stray pickups of other months), else None."""
    pickup = schema.resolve_aliases(list(columns)).get(schema.PICKUP)
    if pickup is None:
        return None
    with path.open("rb") as fh:
        times = pq.read_table(fh, columns=[pickup]).column(0)
    if not pa.types.is_timestamp(times.type):
        return None
    months = pc.add(pc.multiply(pc.year(times), 100), pc.month(times)).drop_null()
    if not len(months):
        return None
    counts = pc.value_counts(months)
    top = pc.index(counts.field("counts"), pc.max(counts.field("counts"))).as_py()
    if counts.field("counts")[top].as_py() < MONTH_SHARE * len(months):
        return None
    return Month.from_yyyymm(counts.field("values")[top].as_py())


def pickup_months(source: InputFile) -> tuple[Month, Month] | None:
    """The first and last pickup month of a Parquet file, from its footer's statistics (no row is read);
    None for other formats, or when the footer keeps no statistics for the pickup column."""
    pickup = schema.resolve_aliases(list(source.columns)).get(schema.PICKUP)
    if source.format != "parquet" or not source.rows or pickup is None:
        return None
    with source.path.open("rb") as fh:
        meta = pq.read_metadata(fh)
    column = meta.schema.to_arrow_schema().get_field_index(pickup)
    stats = [meta.row_group(i).column(column).statistics for i in range(meta.num_row_groups)]
    if not all(st is not None and st.has_min_max and isinstance(st.min, datetime) for st in stats):
        return None
    first, last = min(st.min for st in stats), max(st.max for st in stats)
    return Month(first.year, first.month), Month(last.year, last.month)


def check_all(paths: Sequence[Location]) -> list[InputFile]:
    """Check every file; the first bad one raises."""
    return [check(p) for p in paths]


def _service(name: str, columns: list[str] | tuple[str, ...]) -> str | None:
    lowered = name.lower()
    for service in schema.SERVICES:
        if lowered.startswith(service):
            return service
    prefixes = {c.lower()[:5] for c in columns}
    if "tpep_" in prefixes:
        return "yellow"
    if "lpep_" in prefixes:
        return "green"
    return None


def _check_parquet(path: Location) -> tuple[list[str], int]:
    try:
        with path.open("rb") as fh:
            meta = pq.read_metadata(fh)
    except Exception as exc:  # pyarrow raises several types for a bad footer
        raise BadInputError(path, f"not a readable Parquet file (truncated or corrupt): {exc}") from exc
    return meta.schema.to_arrow_schema().names, meta.num_rows


def _check_csv(path: Location) -> tuple[list[str], int]:
    # A hand-written pass because engines disagree on ragged rows: Spark pads or drops silently.
    rows = 0
    with path.open(newline="", encoding="utf-8", errors="strict") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if not header:
                raise BadInputError(path, "CSV has no header line")
            for record in reader:
                if not record:
                    continue
                rows += 1
                if len(record) != len(header):
                    raise BadInputError(
                        path,
                        f"line {reader.line_num}: {len(record)} fields where the header has {len(header)}",
                    )
        except (csv.Error, UnicodeDecodeError) as exc:
            raise BadInputError(path, f"not a readable CSV file: {exc}") from exc
    return header, rows


def _check_json(path: Location) -> tuple[list[str], int, tuple[BadLine, ...]]:
    columns: dict[str, None] = {}
    rows = 0
    bad: list[BadLine] = []
    with path.open("rb") as fh:  # bytes: a line of bad UTF-8 is one bad line, not a bad file
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as exc:
                bad.append(BadLine(number, f"not UTF-8 ({exc.reason} at byte {exc.start})"))
                continue
            except json.JSONDecodeError as exc:
                bad.append(BadLine(number, f"not valid JSON ({exc.args[0]})"))
                continue
            if not isinstance(record, dict):
                bad.append(BadLine(number, f"expected a JSON object, got {type(record).__name__}"))
                continue
            columns.update(dict.fromkeys(record))
            rows += 1
    if rows == 0 and bad:
        raise BadInputError(
            path, f"no line is a JSON object, so this is not JSON lines (line {bad[0].line}: {bad[0].reason})"
        )
    return list(columns), rows, tuple(bad)


def readable_lines(source: InputFile, folder: Path) -> Location:
    """A copy of a JSON-lines file without its bad lines, in `folder`, for engines that refuse any bad line
    (the source itself when it has none)."""
    if not source.bad_lines:
        return source.path
    skip = {b.line for b in source.bad_lines}
    copy = folder / f"{uuid.uuid4().hex[:8]}-{source.path.name}"
    with source.path.open("rb") as fh, copy.open("wb") as out:
        out.writelines(line for number, line in enumerate(fh, start=1) if number not in skip)
    return copy
