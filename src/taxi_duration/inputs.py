"""Finding input files and checking each one before any engine reads it.

The check is engine-independent and cheap (Parquet: the footer only; CSV and JSON lines: one streaming
pass). It turns every kind of bad file into one clear `BadInputError` naming the file, and it counts the
rows of each file, so the validator can prove that every input row came out somewhere.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from taxi_duration import schema
from taxi_duration.errors import BadInputError, UsageError
from taxi_duration.months import month_in_name

FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}


@dataclass(frozen=True)
class InputFile:
    """One checked input file."""

    path: Path
    format: str
    rows: int
    columns: tuple[str, ...]
    service: str | None
    month: int | None  # YYYYMM from the file name

    @property
    def zones_from_coordinates(self) -> bool:
        """True when the file gives coordinates, not zone ids."""
        return schema.zones_from_coordinates(self.columns)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, as the quality report lists it."""
        return {**asdict(self), "path": str(self.path), "columns": list(self.columns)}


def discover(specs: Sequence[str | Path]) -> list[Path]:
    """Expand files, globs and folders (their trip files, not recursive) into a sorted list of files.

    Raises:
        UsageError: a spec matches nothing, or a file has an extension no reader handles.
    """
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in FORMATS and not p.name.startswith("."))
            if not files:
                raise UsageError(f"{path}: folder holds no trip files ({', '.join(sorted(FORMATS))})")
        elif path.is_file():
            files = [path]
        else:
            files = [Path(p) for p in sorted(glob.glob(str(spec))) if Path(p).is_file()]
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


def check(path: Path) -> InputFile:
    """Check that `path` holds trip data and count its rows, or raise `BadInputError` saying why not."""
    fmt = FORMATS[path.suffix.lower()]
    if path.stat().st_size == 0:
        raise BadInputError(path, "file is empty")
    columns, rows = {"parquet": _check_parquet, "csv": _check_csv, "json": _check_json}[fmt](path)
    if missing := schema.missing_required(columns):
        raise BadInputError(path, f"not trip data: missing required column(s) {'; '.join(missing)}")
    month = month_in_name(path.name)
    return InputFile(path, fmt, rows, tuple(columns), _service(path.name, columns), month.yyyymm if month else None)


def check_all(paths: list[Path]) -> list[InputFile]:
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


def _check_parquet(path: Path) -> tuple[list[str], int]:
    try:
        meta = pq.read_metadata(path)
    except Exception as exc:  # pyarrow raises several types for a bad footer
        raise BadInputError(path, f"not a readable Parquet file (truncated or corrupt): {exc}") from exc
    return meta.schema.to_arrow_schema().names, meta.num_rows


def _check_csv(path: Path) -> tuple[list[str], int]:
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
    if rows == 0:
        raise BadInputError(path, "CSV has a header but no rows")
    return header, rows


def _check_json(path: Path) -> tuple[list[str], int]:
    columns: dict[str, None] = {}
    rows = 0
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise BadInputError(path, f"line {number}: not valid JSON ({exc.args[0]})") from exc
            if not isinstance(record, dict):
                raise BadInputError(path, f"line {number}: expected a JSON object, got {type(record).__name__}")
            columns.update(dict.fromkeys(record))
            rows += 1
    if rows == 0:
        raise BadInputError(path, "no JSON lines in file")
    return list(columns), rows
