"""The dashboard's data layer: every source it shows, read as it was written, or what is missing and how to make it.

Each reader answers its data or a `Missing` (what is absent, and the command that makes it) and never raises
for an absent, unreachable or corrupt source, so one bad source costs only its own panel. Nothing is
recomputed: metrics, scores and plots come from MLflow, counts from the reports the commands wrote.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.parquet as pq
from mlflow.exceptions import MlflowException
from prometheus_client.parser import text_string_to_metric_families

from taxi_duration.core.config import CHAMPION, MODEL_NAME, Settings
from taxi_duration.ingest.quality import CLEAN_DIR, QUARANTINE_DIR, REPORT_JSON
from taxi_duration.monitor.drift_report import REPORT, SUMMARY
from taxi_duration.registry import tracking
from taxi_duration.stream.predictions import PREDICTIONS
from taxi_duration.stream.predictions import QUARANTINE as STREAM_QUARANTINE

# What the champion is compared with on the Overview: the course baseline and the zone-pair median.
COMPARED = ("model", "course", "zone_pair_median")
# Folders a report search never enters: trip Parquet, MLflow's store, scratch files. Keeps it to milliseconds.
SKIPPED_DIRS = {CLEAN_DIR, QUARANTINE_DIR, PREDICTIONS, STREAM_QUARANTINE, "mlflow", "tmp", "plots"}
METRICS_TIMEOUT_S = 2.0
PREDICT_PREFIX = "/predict"  # the endpoints whose latency Live shows: /predict and /predict/batch


@dataclass(frozen=True)
class Missing:
    """A source a panel cannot show: what is missing, and the command that makes it."""

    what: str
    command: str


# The champion and the registry (MLflow).


@dataclass(frozen=True)
class Champion:
    """The version the `champion` alias points at, with what its training run logged."""

    version: str
    run_id: str
    registered_at: datetime  # registration and the champion decision happen in the same training run
    feature_set: str
    model: str
    train_months: str
    validate_month: str
    test_month: str
    rmse: dict[str, dict[str, float]]  # "validate"/"test" -> model or baseline -> RMSE in minutes
    interval_coverage: float | None  # share of test trips inside the logged p10-p90 interval
    tracking_uri: str


def _no_champion(settings: Settings) -> Missing:
    return Missing(f"no champion in the MLflow store {settings.mlflow_tracking_uri}", "taxi-duration run")


def champion(settings: Settings) -> Champion | Missing:
    """The registry's champion and its run's parameters and metrics."""
    try:
        client = tracking.client(settings)
        version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
        run = client.get_run(str(version.run_id))
    except (MlflowException, OSError):
        return _no_champion(settings)
    params, metrics = run.data.params, run.data.metrics
    rmse = {
        role: {name: metrics[f"{role}_{name}_rmse"] for name in COMPARED if f"{role}_{name}_rmse" in metrics}
        for role in ("validate", "test")
    }
    return Champion(
        version=str(version.version),
        run_id=str(version.run_id),
        registered_at=_time(version.creation_timestamp),
        feature_set=params.get("feature_set", "?"),
        model=params.get("model", "?"),
        train_months=params.get("train_months", "?"),
        validate_month=params.get("validate_month", "?"),
        test_month=params.get("test_month", "?"),
        rmse=rmse,
        interval_coverage=metrics.get("test_interval_coverage"),
        tracking_uri=str(settings.mlflow_tracking_uri),
    )


def versions(settings: Settings) -> pd.DataFrame | Missing:
    """Every registered version, newest first: when, its validation RMSE, the registry's decision, champion now."""
    try:
        client = tracking.client(settings)
        found = client.search_model_versions(f"name = '{MODEL_NAME}'")
        current = client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version if found else None
    except (MlflowException, OSError):
        return _no_champion(settings)
    if not found:
        return _no_champion(settings)
    rows = [
        {
            "version": int(v.version),
            "registered": _time(v.creation_timestamp),
            "validation RMSE": float(v.tags[tracking.RMSE_TAG]) if tracking.RMSE_TAG in v.tags else math.nan,
            "decision": v.tags.get(tracking.DECISION_TAG, ""),
            "champion now": str(v.version) == str(current),
            "run": v.run_id,
        }
        for v in found
    ]
    return pd.DataFrame(rows).sort_values("version", ascending=False, ignore_index=True)


def champion_history(table: pd.DataFrame) -> pd.DataFrame:
    """Each version that took the alias when registered, and until which later one held it."""
    took = table[table["decision"] == "champion"].sort_values("version", ignore_index=True)
    until = [*(f"v{v}" for v in took["version"].iloc[1:]), "now"]
    return took.assign(until=until)[["version", "registered", "validation RMSE", "until"]]


def run_artifact(settings: Settings, run_id: str, path: str) -> bytes | Missing:
    """One file a training run logged (`scores.json`, `plots/predicted_vs_actual.png`), as bytes."""
    try:
        with tempfile.TemporaryDirectory(dir=settings.scratch_dir()) as work:
            local = tracking.client(settings).download_artifacts(run_id, path, work)
            return Path(local).read_bytes()
    except (MlflowException, OSError):
        return Missing(f"run {run_id} has no {path}", "taxi-duration run (a new training run logs it)")


def scores_table(scores: dict[str, Any], by: str) -> pd.DataFrame:
    """RMSE by `by_borough` or `by_hour_band` of the model and each baseline, from a run's `scores.json` part."""
    rows = {name: {k: v["rmse"] for k, v in result[by].items()} for name, result in scores.items()}
    return pd.DataFrame(rows)


# Reports on disk: `validate` and `drift`.


def _reports(root: Path, name: str) -> Iterator[Path]:
    """Every file called `name` under `root`, newest folder layout first, skipping trip and store folders."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        if name in files:
            yield Path(folder) / name


def _read_reports(
    root: Path,
    name: str,
    read: Callable[[Path, dict[str, Any]], dict[str, Any]],
    what: str,
    remake: Callable[[Path], str],
) -> tuple[list[dict[str, Any]], list[Missing]]:
    """Every JSON file called `name` under `root` as `read(path, document)` makes it, and for each one that
    cannot be read, a `Missing` that says why, with `remake(its folder)`, the command that writes it again."""
    found, problems = [], []
    for path in _reports(root, name):
        try:
            found.append(read(path, json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(
                Missing(f"{path} is not a readable {what} ({type(exc).__name__}: {exc})", remake(path.parent))
            )
    return found, problems


def _none_found(what: str, problems: list[Missing], command: str) -> Missing:
    return Missing(what + (f" ({len(problems)} unreadable)" if problems else ""), command)


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

    found, problems = _read_reports(
        root,
        REPORT_JSON,
        read,
        "validate report",
        lambda folder: f"taxi-duration validate FILES --out {folder} --overwrite",
    )
    if not found:
        return _none_found(
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

    found, problems = _read_reports(
        root,
        SUMMARY,
        read,
        "drift summary",
        lambda folder: f"taxi-duration drift --reference FILES --current FILES --out {folder} --overwrite",
    )
    if not found:
        return _none_found(
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


# Live: a server's /metrics, a stream's output.


@dataclass(frozen=True)
class ServerSample:
    """One scrape of a prediction server's `/metrics`."""

    at: float  # time.monotonic() of the scrape
    requests: pd.DataFrame  # endpoint, status, count
    latency_buckets: dict[float, float]  # upper bound (s) -> requests at most that slow, prediction endpoints
    trips: float  # trips predicted since the server started
    model_version: float | None

    @property
    def total(self) -> float:
        """Requests served since the server started."""
        return float(self.requests["count"].sum())

    @property
    def errors(self) -> float:
        """Requests answered with a 5xx."""
        return float(self.requests.loc[self.requests["status"].str.startswith("5"), "count"].sum())

    @property
    def refused(self) -> float:
        """Requests answered with a 4xx (bad input, a wrong key)."""
        return float(self.requests.loc[self.requests["status"].str.startswith("4"), "count"].sum())

    def latency_ms(self, q: float) -> float:
        """The q-quantile of prediction latency, interpolated within its bucket as Prometheus does."""
        bounds = sorted(self.latency_buckets)
        total = self.latency_buckets.get(math.inf, 0.0)
        if not total:
            return math.nan
        rank, lower, below = q * total, 0.0, 0.0
        for upper in bounds:
            count = self.latency_buckets[upper]
            if count >= rank:
                if math.isinf(upper):
                    return lower * 1000
                inside = count - below
                return 1000 * (lower + (upper - lower) * ((rank - below) / inside if inside else 1.0))
            lower, below = upper, count
        return math.nan


def server_metrics(url: str, at: float) -> ServerSample | Missing:
    """Scrape `url` (a `taxi-duration serve` /metrics) once."""
    try:
        response = httpx.get(url, timeout=METRICS_TIMEOUT_S)
        response.raise_for_status()
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
    except (httpx.HTTPError, ValueError) as exc:
        return Missing(f"no server at {url} ({type(exc).__name__}: {exc})", "taxi-duration serve")
    if "taxi_duration_requests" not in families:
        return Missing(f"{url} is not a taxi-duration server's metrics", "taxi-duration serve")
    requests = pd.DataFrame(
        [
            {"endpoint": s.labels["endpoint"], "status": s.labels["status"], "count": s.value}
            for s in families["taxi_duration_requests"].samples
            if s.name.endswith("_total")
        ],
        columns=["endpoint", "status", "count"],
    )
    buckets: dict[float, float] = {}
    for s in families["taxi_duration_request_seconds"].samples:
        if s.name.endswith("_bucket") and s.labels["endpoint"].startswith(PREDICT_PREFIX):
            bound = float(s.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + s.value
    trips = sum(s.value for s in families["taxi_duration_predicted_trips"].samples if s.name.endswith("_total"))
    version = next((s.value for s in families["taxi_duration_model_version"].samples), None)
    return ServerSample(at, requests, buckets, trips, version)


def requests_per_s(before: ServerSample, after: ServerSample) -> float:
    """Requests a second between two scrapes of the same server (0 if it restarted in between)."""
    seconds = after.at - before.at
    return max(after.total - before.total, 0.0) / seconds if seconds > 0 else math.nan


def stream_batches(settings: Settings) -> pd.DataFrame | Missing:
    """The stream's batches from its output folder: when each was scored, events predicted and quarantined,
    events a second since the batch before."""
    folder = settings.dashboard_stream
    if folder is None:
        return Missing(
            "no stream output folder given (the folder `taxi-duration stream --output` writes)",
            "taxi-duration dashboard --stream OUTPUT",
        )
    files = sorted((folder / PREDICTIONS).glob("batch-*.parquet"))
    if not files:
        return Missing(
            f"no stream output in {folder}",
            f"taxi-duration stream --input LANDING --output {folder} --checkpoint CHECKPOINT",
        )
    rows = []
    try:
        for path in files:
            scored = pq.read_table(path, columns=["scored_at"]).column(0)
            refused = path.parent.parent / STREAM_QUARANTINE / path.name
            rows.append(
                {
                    "batch": int(path.stem.removeprefix("batch-")),
                    "scored_at": scored[0].as_py(),
                    "predicted": len(scored),
                    "quarantined": pq.read_metadata(refused).num_rows if refused.is_file() else 0,
                }
            )
    except (OSError, ValueError, KeyError) as exc:
        return Missing(f"{folder} holds an unreadable batch file ({exc})", "restart the stream: it rewrites a batch")
    table = pd.DataFrame(rows).sort_values("scored_at", ignore_index=True)
    gap = table["scored_at"].diff().dt.total_seconds()
    table["events/s"] = (table["predicted"] + table["quarantined"]) / gap
    return table


def stream_lag_s(table: pd.DataFrame) -> float:
    """Seconds since the stream's last batch was written."""
    return (datetime.now(UTC) - table["scored_at"].iloc[-1]).total_seconds()


def _time(millis: int | None) -> datetime:
    return datetime.fromtimestamp((millis or 0) / 1000, UTC)


def _month(value: Any) -> str:
    """A report's month (202301 or "2023-01") as YYYY-MM; "-" for a file whose name carries none."""
    text = str(value or "").replace("-", "")
    return f"{text[:4]}-{text[4:6]}" if len(text) == 6 and text.isdigit() else "-"


def _span(months: list[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"
