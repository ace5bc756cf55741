"""The `validate` reports: rows per month, quarantined rows by reason, the latest report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from taxi_duration.core.config import Settings
from taxi_duration.ingest.quality import REPORT_JSON
from taxi_duration.monitor.dashboard.sources.missing import Missing
from taxi_duration.monitor.dashboard.sources.reports import none_found, read_reports


@dataclass
class QualityReports:
    """The `validate` reports found: rows per month, quarantined rows by reason per report, the unreadable."""

    months: pd.DataFrame  # month, input, clean, quarantined (the latest report of each file wins)
    reasons: pd.DataFrame  # report (its months), reason -> rows
    latest: dict[str, Any] | None  # the newest report, with its path
    problems: list[Missing] = field(default_factory=list)


def quality_reports(settings: Settings) -> QualityReports | Missing:
    """Every `validate` report (`report.json`) under the reports folder."""
    root = Path(str(settings.dashboard_reports))

    def read(path: Path, report: dict[str, Any]) -> dict[str, Any]:
        files = [
            (f["path"], f["month"], f["input_rows"], f["clean_rows"], f["quarantined_rows"]) for f in report["files"]
        ]
        return {**report, "path": str(path), "rows": files, "by_reason": dict(report["by_reason"])}

    found, problems = read_reports(
        root,
        REPORT_JSON,
        read,
        "validate report",
        lambda folder: f"taxi-duration validate FILES --out {folder} --overwrite",
    )
    if not found:
        return none_found(
            f"no validate report under {root}",
            problems,
            f"taxi-duration validate FILES --out {root / 'quality' / 'MONTH'}",
        )
    found.sort(key=lambda r: str(r.get("created_at", "")))
    by_file: dict[str, tuple[Any, ...]] = {}  # a file validated again counts once, as last validated
    for report in found:
        for path, *counts in report["rows"]:
            by_file[path] = tuple(counts)
    months = pd.DataFrame(list(by_file.values()), columns=["month", "input", "clean", "quarantined"])
    months["month"] = months["month"].map(_month)
    months = months.groupby("month", as_index=False).sum().sort_values("month", ignore_index=True)
    reasons = pd.DataFrame(
        [
            {"report": _span(sorted({_month(r[1]) for r in report["rows"]})), "reason": reason, "rows": rows}
            for report in found
            for reason, rows in report["by_reason"].items()
            if rows
        ],
        columns=["report", "reason", "rows"],
    )
    return QualityReports(months, reasons, found[-1], problems)


def quarantined_share(report: dict[str, Any]) -> float:
    """The share of a report's rows that were quarantined."""
    return report["quarantined_rows"] / report["input_rows"] if report["input_rows"] else 0.0


def _month(value: Any) -> str:
    """A report's month (202301 or "2023-01") as YYYY-MM; "-" for a file whose name carries none."""
    text = str(value or "").replace("-", "")
    return f"{text[:4]}-{text[4:6]}" if len(text) == 6 and text.isdigit() else "-"


def _span(months: list[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"
