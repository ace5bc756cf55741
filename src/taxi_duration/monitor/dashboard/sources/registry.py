"""The champion and the registry's versions, and what their training runs logged (read from MLflow)."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException

from taxi_duration.core.config import CHAMPION, MODEL_NAME, Settings
from taxi_duration.monitor.dashboard.sources.missing import Missing
from taxi_duration.registry import tracking

# What the champion is compared with on the Overview: the course baseline and the zone-pair median.
COMPARED = ("model", "course", "zone_pair_median")


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


def _time(millis: int | None) -> datetime:
    return datetime.fromtimestamp((millis or 0) / 1000, UTC)
