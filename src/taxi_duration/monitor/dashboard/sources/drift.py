"""The `drift` outputs: each summary (checked against its own verdicts), its HTML page, and checks over time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from taxi_duration.core.config import Settings
from taxi_duration.monitor.dashboard.sources.missing import Missing
from taxi_duration.monitor.dashboard.sources.reports import none_found, read_reports
from taxi_duration.monitor.drift_report import REPORT, SUMMARY


@dataclass
class DriftSummaries:
    """The `drift` summaries found, oldest first, and the unreadable ones."""

    summaries: list[dict[str, Any]]  # each with its `path` and `report` (the HTML page, if present)
    problems: list[Missing] = field(default_factory=list)

    @property
    def latest(self) -> dict[str, Any]:
        """The newest summary."""
        return self.summaries[-1]

    def over_time(self) -> pd.DataFrame:
        """One row per summary and check: when, the check, its statistic, threshold, and statistic/threshold."""
        rows = [
            {
                "created_at": pd.Timestamp(s["created_at"]),
                "check": c["name"],
                "statistic": c["statistic"],
                "threshold": c["threshold"],
                "of threshold": c["statistic"] / c["threshold"],
                "verdict": c["verdict"],
            }
            for s in self.summaries
            for c in s["checks"]
        ]
        return pd.DataFrame(rows)


def drift_summaries(settings: Settings) -> DriftSummaries | Missing:
    """Every `drift` output (`summary.json` beside `report.html`) under the reports folder."""
    root = Path(str(settings.dashboard_reports))

    def read(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
        page = path.with_name(REPORT)
        checks = [_drift_check(c) for c in summary["checks"]]
        crossed = [c["name"] for c in checks if c["verdict"] == "drift"]
        if summary["drift"] is not bool(crossed) or list(summary["crossed"]) != crossed:
            raise ValueError(f"its drift ({summary['drift']!r}) and crossed fields contradict its checks' verdicts")
        if not isinstance(summary["created_at"], str):
            raise TypeError(f"created_at is {summary['created_at']!r}, not an ISO time")
        return {
            **summary,
            "checks": checks,
            "created_at": pd.Timestamp(summary["created_at"]).isoformat(),  # a ValueError when it is no time
            "path": str(path),
            "report": str(page) if page.is_file() else None,
        }

    found, problems = read_reports(
        root,
        SUMMARY,
        read,
        "drift summary",
        lambda folder: f"taxi-duration drift --reference FILES --current FILES --out {folder} --overwrite",
    )
    if not found:
        return none_found(
            f"no drift report yet under {root}",
            problems,
            f"taxi-duration drift --reference TRAIN_FILES --current NEW_FILES --out {root / 'drift' / 'MONTH'} "
            "--model models:/taxi-duration@champion",
        )
    found.sort(key=lambda s: s["created_at"])
    return DriftSummaries(found, problems)


def _drift_check(check: dict[str, Any]) -> dict[str, Any]:
    """A check as the pages draw it; a ValueError or TypeError names a value they could not."""
    found = {k: check[k] for k in ("name", "statistic_name", "statistic", "threshold", "verdict")}
    for number in ("statistic", "threshold"):
        value = found[number]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TypeError(f"check {found['name']!r}: {number} is {value!r}, not a number")
    if found["threshold"] <= 0 or found["verdict"] not in ("ok", "drift"):
        raise ValueError(f"check {found['name']!r}: threshold {found['threshold']!r}, verdict {found['verdict']!r}")
    return found
