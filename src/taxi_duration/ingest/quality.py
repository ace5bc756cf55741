"""The validate job: read inputs, flag every row, write clean and quarantined rows and a quality report.

Rows are split into `clean/` and `quarantine/` in one write (both keep the `reasons` column, null on
every clean row, so their schemas are one). JSON-lines lines that are not a JSON object never become rows:
they are listed by file, line number and reason in `unreadable_lines.jsonl` and counted as quarantined. The
output folder appears whole or not at all. Counts are reconciled before it appears: rows counted in the input
files (by `inputs.check`), per file, against the rows found in the written `clean/` and `quarantine/`
folders, and input rows + unreadable lines = clean + quarantined.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import narwhals as nw
import pyarrow as pa
import pyarrow.parquet as pq

from taxi_duration.core import schema
from taxi_duration.core.atomic import P, atomic_dir
from taxi_duration.core.errors import ReconciliationError
from taxi_duration.core.storage import Location, remove_tree, rename
from taxi_duration.engines.frames import Runtime, arrow_type
from taxi_duration.features.definitions import featurize
from taxi_duration.geo.shapes import UNKNOWN_ZONE
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.ingest.readers import read_trips
from taxi_duration.ingest.validation import (
    REASON_RULES,
    REPAIRS,
    REPAIRS_COL,
    RULES,
    UNREADABLE_LINE,
    flag,
    split_codes,
)

CLEAN_DIR = "clean"
QUARANTINE_DIR = "quarantine"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
UNREADABLE_JSONL = "unreadable_lines.jsonl"
STATUS_COL = "_status"


@dataclass
class QualityReport:
    """What validation found, as written to `report.json`."""

    input_rows: int  # rows and unreadable lines: clean + quarantined
    clean_rows: int
    quarantined_rows: int  # a row counts once here, under every reason it breaks in `by_reason`
    by_reason: dict[str, int]
    repaired: dict[str, int]
    engine: str
    files: list[dict[str, Any]] = field(default_factory=list)
    # Pickup and dropoff points of files with coordinates instead of zones: inside a zone, or unknown.
    zones_from_coordinates: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, with the rule texts so a reader needs no code to interpret the codes."""
        return {
            "input_rows": self.input_rows,
            "clean_rows": self.clean_rows,
            "quarantined_rows": self.quarantined_rows,
            "by_reason": self.by_reason,
            "by_reason_note": "a row may break several rules: it counts under each, once in quarantined_rows",
            "repaired": self.repaired,
            "rules": REASON_RULES,
            "repairs": {r.code: r.description for r in REPAIRS},
            "engine": self.engine,
            "files": self.files,
            "zones_from_coordinates": self.zones_from_coordinates,
            "elapsed_s": round(self.elapsed_s, 3),
            "created_at": self.created_at,
        }

    def of_files(self, names: Collection[str]) -> QualityReport:
        """The report of the files named `names` alone (each file's entry keeps its own counts): what validating
        them on their own would say, as long as no trip of theirs is a copy of one in the other files."""
        files = [f for f in self.files if Path(f["path"]).name in names]
        by_reason = Counter(dict.fromkeys(self.by_reason, 0))
        repaired = Counter(dict.fromkeys(self.repaired, 0))
        zones: Counter[str] = Counter()
        for f in files:
            by_reason.update(f["by_reason"])
            repaired.update(f["repaired"])
            zones.update(f.get("zones_from_coordinates", {}))
        return replace(
            self,
            input_rows=sum(f["input_rows"] for f in files),
            clean_rows=sum(f["clean_rows"] for f in files),
            quarantined_rows=sum(f["quarantined_rows"] for f in files),
            by_reason=dict(by_reason),
            repaired=dict(repaired),
            files=files,
            zones_from_coordinates=dict(zones),
        )


def validate(
    runtime: Runtime, files: list[InputFile], out: Location, *, overwrite: bool = False, features: bool = False
) -> QualityReport:
    """Validate `files` on `runtime` into `out/{clean,quarantine}/`, `out/report.json` and `out/report.md`.

    With `features`, every row also carries the model features and the target (`features.py`).
    """
    started = time.perf_counter()
    names = ", ".join(f.path.name for f in files)
    # Under the spill bound: the duplicate check's group-by of hashes and the Parquet it reads would otherwise
    # grow with the rows (1.1 GiB at 50M rows, where 1M rows take 0.65).
    with atomic_dir(out, overwrite=overwrite) as tmp, runtime.reading(names), runtime.spilling():
        flagged = flag(runtime, read_trips(runtime, files))
        if features:
            flagged = featurize(runtime, flagged, keep=(*schema.NAMES, schema.REASONS, REPAIRS_COL))
        # One pass over the inputs after the duplicate check's hash pass: rows are split while written, so
        # the job runs once.
        status = nw.when(nw.col(schema.REASONS).is_null()).then(nw.lit(CLEAN_DIR)).otherwise(nw.lit(QUARANTINE_DIR))
        runtime.write_parquet(flagged.with_columns(status.alias(STATUS_COL)), tmp / "_split", partition_by=STATUS_COL)
        _name_partitions(tmp / "_split", tmp, flagged)
        keys = (schema.SOURCE_FILE, schema.REASONS, REPAIRS_COL)
        # Only the parts that hold rows: pandas warns that concatenating an empty frame will change meaning.
        parts = [name for name in (CLEAN_DIR, QUARANTINE_DIR) if parquet_rows(tmp / name)] or [CLEAN_DIR]
        scans = [runtime.scan_parquet(tmp / name, columns=list(keys)) for name in parts]
        combos = scans[0] if len(scans) == 1 else nw.concat(scans, how="vertical")
        report = _report(runtime, files, combos.group_by(*keys).agg(nw.len().alias("rows")).collect(), tmp)
        _write_unreadable(files, tmp / UNREADABLE_JSONL)
        by_file = _zone_counts(runtime, files, tmp)
        zones: Counter[str] = Counter()
        for entry in report.files:
            if counts := by_file.get(Path(entry["path"]).name):
                entry["zones_from_coordinates"] = counts
                zones.update(counts)  # `update`, not `+`: a sum of Counters drops the zero counts
        report.zones_from_coordinates = dict(zones)
        report.elapsed_s = time.perf_counter() - started
        (tmp / REPORT_JSON).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        (tmp / REPORT_MD).write_text(to_markdown(report))
    return report


def _write_unreadable(files: list[InputFile], path: Location) -> None:
    """List every unreadable line, one JSON object each (the file is written only when there are some)."""
    lines = [
        json.dumps({schema.SOURCE_FILE: f.path.name, "line": b.line, "reason": b.reason})
        for f in files
        for b in f.bad_lines
    ]
    if lines:
        path.write_text("\n".join(lines) + "\n")


def _zone_counts(runtime: Runtime, files: list[InputFile], out: Location) -> dict[str, dict[str, int]]:
    """Of the points whose zone came from coordinates, how many fell inside a zone and how many in none, by
    file."""
    names = [f.path.name for f in files if f.zones_from_coordinates]
    if not names:
        return {}
    columns = [schema.SOURCE_FILE, schema.PU_ZONE, schema.DO_ZONE]
    rows = nw.concat([runtime.scan_parquet(out / name, columns=columns) for name in (CLEAN_DIR, QUARANTINE_DIR)])
    unknown = nw.sum_horizontal(*((nw.col(zone) == UNKNOWN_ZONE).cast(nw.Int64()) for zone in schema.ZONES))
    found = (
        rows.filter(nw.col(schema.SOURCE_FILE).is_in(names))
        .with_columns(unknown.alias("unknown"))  # a column first: pandas' group-by sums only plain columns right
        .group_by(schema.SOURCE_FILE)
        .agg(nw.len().alias("rows"), nw.col("unknown").sum())
        .collect()
    )
    counts = {name: (2 * int(trips), int(missed or 0)) for name, trips, missed in found.iter_rows()}
    return {
        name: {"points": points, "inside_a_zone": points - missed, "unknown_zone": missed}
        for name in names
        for points, missed in [counts.get(name, (0, 0))]
    }


def _name_partitions(split: P, out: P, frame: nw.LazyFrame[Any]) -> None:
    """Move `split/_status=clean` to `out/clean` (same for quarantine); an empty side gets an empty file."""
    for name in (CLEAN_DIR, QUARANTINE_DIR):
        part = split / f"{STATUS_COL}={name}"
        if part.is_dir():
            rename(part, out / name)
        else:
            (out / name).mkdir()
            types = frame.collect_schema()
            empty = pa.schema([(col, arrow_type(dtype)) for col, dtype in types.items()])
            with (out / name / "part-0.parquet").open("wb") as fh:
                pq.write_table(empty.empty_table(), fh)
    remove_tree(split)


def _report(runtime: Runtime, files: list[InputFile], combos: nw.DataFrame[Any], out: Location) -> QualityReport:
    by_reason: Counter[str] = Counter({**{r.code: 0 for r in RULES}, UNREADABLE_LINE: 0})
    repaired: Counter[str] = Counter({r.code: 0 for r in REPAIRS})
    clean: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    reasons_of: defaultdict[str, Counter[str]] = defaultdict(Counter)
    repairs_of: defaultdict[str, Counter[str]] = defaultdict(Counter)
    # Through Arrow so a missing value is None on every engine (pandas would give pd.NA).
    for source, reasons, repairs, rows in zip(*combos.to_arrow().to_pydict().values(), strict=True):
        (clean if reasons is None else quarantined)[source] += rows
        reasons_of[source].update(dict.fromkeys(split_codes(reasons), rows))
        repairs_of[source].update(dict.fromkeys(split_codes(repairs), rows))
    per_file = []
    for f in files:
        name = f.path.name
        if f.rows != clean[name] + quarantined[name]:
            raise ReconciliationError(
                f"{f.path}: {f.rows} rows in the file, {clean[name]} clean + {quarantined[name]} quarantined "
                f"({runtime.engine} engine)"
            )
        unreadable = len(f.bad_lines)
        if unreadable:
            reasons_of[name][UNREADABLE_LINE] = unreadable
        by_reason.update(reasons_of[name])
        repaired.update(repairs_of[name])
        per_file.append(
            {
                **f.to_dict(),
                "input_rows": f.rows + unreadable,
                "clean_rows": clean[name],
                "quarantined_rows": quarantined[name] + unreadable,
                "by_reason": dict(reasons_of[name]),
                "repaired": dict(repairs_of[name]),
            }
        )
    rows = sum(f.rows for f in files)
    written = {name: parquet_rows(out / name) for name in (CLEAN_DIR, QUARANTINE_DIR)}
    if not rows == clean.total() + quarantined.total() == written[CLEAN_DIR] + written[QUARANTINE_DIR]:
        raise ReconciliationError(
            f"row counts do not reconcile: {rows} in input files, {clean.total()} clean + "
            f"{quarantined.total()} quarantined flagged, {written[CLEAN_DIR]} + {written[QUARANTINE_DIR]} written "
            f"({runtime.engine} engine)"
        )
    unreadable_lines = sum(len(f.bad_lines) for f in files)
    return QualityReport(
        input_rows=rows + unreadable_lines,
        clean_rows=clean.total(),
        quarantined_rows=quarantined.total() + unreadable_lines,
        by_reason=dict(by_reason),
        repaired=dict(repaired),
        engine=str(runtime.engine),
        files=per_file,
    )


def parquet_rows(folder: Location) -> int:
    """Rows in every Parquet file under `folder`, from their footers."""
    rows = 0
    for path in folder.rglob("*.parquet"):
        with path.open("rb") as fh:
            rows += pq.read_metadata(fh).num_rows
    return rows


def to_markdown(report: QualityReport) -> str:
    """The report as a Markdown page a person can read."""
    pct = 100 / report.input_rows if report.input_rows else 0.0
    lines = [
        "# Data quality report",
        "",
        f"Engine `{report.engine}`, {len(report.files)} file(s), {report.elapsed_s:.1f} s.",
        "",
        "| rows | count | share |",
        "|---|---:|---:|",
        f"| input | {report.input_rows:,} | 100.00% |",
        f"| clean | {report.clean_rows:,} | {report.clean_rows * pct:.2f}% |",
        f"| quarantined | {report.quarantined_rows:,} | {report.quarantined_rows * pct:.2f}% |",
        "",
        "A quarantined row counts under every reason it breaks, so the reasons may add up to more than the",
        "quarantined rows.",
        "",
        "| reason | rows | share | rule |",
        "|---|---:|---:|---|",
        *(
            f"| {code} | {report.by_reason[code]:,} | {report.by_reason[code] * pct:.2f}% | {rule} |"
            for code, rule in REASON_RULES.items()
        ),
        "",
        "| repair (row stays clean) | rows | share | rule |",
        "|---|---:|---:|---|",
        *(
            f"| {r.code} | {report.repaired[r.code]:,} | {report.repaired[r.code] * pct:.2f}% | {r.description} |"
            for r in REPAIRS
        ),
        "",
        "| file | input | clean | quarantined | quarantined share |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {Path(f['path']).name} | {f['input_rows']:,} | {f['clean_rows']:,} | {f['quarantined_rows']:,} "
            f"| {_share(f['quarantined_rows'], f['input_rows'])} |"
            for f in report.files
        ),
        "",
    ]
    if zones := report.zones_from_coordinates:
        share = 100 / zones["points"] if zones["points"] else 0.0
        lines += [
            "| zones from coordinates (pickup and dropoff points) | points | share |",
            "|---|---:|---:|",
            *(
                f"| {k.replace('_', ' ')} | {zones[k]:,} | {zones[k] * share:.2f}% |"
                for k in ("inside_a_zone", "unknown_zone")
            ),
            "",
        ]
    return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    """`part` as a percentage of `whole`; an empty file (0 of 0) has none."""
    return f"{100 * part / whole:.2f}%" if whole else "-"
