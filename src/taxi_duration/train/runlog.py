"""What a training run logs to MLflow besides the model: the searches' nested runs, the metrics and the figures.

A search shows as one nested run per fit, started and ended when the fit was (`log_child`): the Spark search's
candidates (`log_search`) and the tuned search's trials (`log_study`). Parameters are logged flat, nested
keys joined by dots (`flat`).
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from taxi_duration.features.definitions import TARGET
from taxi_duration.train import metrics as evaluate
from taxi_duration.train import plots


def flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`params` with nested dicts flattened: `{"a": {"b": 1}}` is `{"a.b": 1}`."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def drawn(trial: dict[str, Any]) -> dict[str, Any]:
    """What a trial of the study's history drew: its LightGBM parameters and its `month_decay`."""
    return {**trial["params"], "month_decay": trial["month_decay"]}


def log_search(client: mlflow.MlflowClient, parent: Any, search: list[dict[str, Any]], parallelism: int) -> None:
    """Show the Spark search's parallelism: one nested run per candidate, started and ended when the candidate
    was (so the MLflow UI lists them side by side in time), and on the parent run the timeline as JSON and as
    a chart, with the most candidates that ran at once."""
    from taxi_duration.train.spark_search import peak_concurrency

    timeline = []
    for row in search:
        run_id = log_child(
            client,
            parent,
            f"candidate-{row['candidate']}-{row['name']}",
            (row["started_at"], row["ended_at"]),
            {k: row[k] for k in ("validate_rmse", "duration_s", "start_s", "end_s")},
            {"family": row["name"], **row["params"]},
            {"spark_job_group": row["spark_job_group"], "spark_job_ids": ",".join(map(str, row["spark_job_ids"]))},
        )
        timeline.append({**row, "run_id": run_id})
    mlflow.log_dict({"parallelism": parallelism, "candidates": timeline}, "search/timeline.json")
    title = f"Candidate search: {len(timeline)} fits, {parallelism} at a time"
    mlflow.log_figure(plots.search_timeline(timeline, title), "plots/search_timeline.png")
    mlflow.log_metrics(
        {
            "search_peak_concurrency": peak_concurrency([(r["start_s"], r["end_s"]) for r in timeline]),
            "search_wall_s": max(r["end_s"] for r in timeline),
            "search_fit_s": sum(r["duration_s"] for r in timeline),
        }
    )


def log_study(client: mlflow.MlflowClient, parent: Any, study: dict[str, Any]) -> None:
    """The tuned search: one nested run per trial (its parameters; its validation RMSE, rounds, seconds and
    whether it was pruned; started and ended when the trial was; on Spark, the executor that ran it), and on the
    parent run the study's summary
    (`search/study.json`, with each trial's run id) and its numbers as `tune_*` metrics."""
    first = min(t["started_at"] for t in study["history"])
    history = []
    for t in study["history"]:
        run_id = log_child(
            client,
            parent,
            f"trial-{t['number']}",
            (t["started_at"], t["ended_at"]),
            {
                "validate_rmse": t["validate_rmse"],
                "rounds": t["rounds"],
                "pruned": int(t["pruned"]),
                "duration_s": t["duration_s"],
                "start_s": t["started_at"] - first,
                "end_s": t["ended_at"] - first,
            },
            drawn(t),
            {
                "optuna_state": "PRUNED" if t["pruned"] else "COMPLETE",
                **({"executor": t["where"]} if t["where"] else {}),
            },
        )
        history.append({**t, "run_id": run_id})
    mlflow.log_dict({**study, "history": history}, "search/study.json")
    mlflow.log_metrics(
        {
            f"tune_{k}": study[k]
            for k in ("trials", "pruned", "best_trial", "best_validate_rmse", "best_rounds", "wall_s", "budget_s")
        }
    )


def log_child(
    client: mlflow.MlflowClient,
    parent: Any,
    name: str,
    span: tuple[float, float],
    metrics: dict[str, float],
    params: dict[str, Any],
    tags: dict[str, str],
) -> str:
    """A nested run under `parent` for one fit of a search, started and ended at `span` (seconds since the
    epoch), so the MLflow UI lists the fits side by side in time; its run id."""
    child = client.create_run(
        parent.info.experiment_id,
        start_time=int(span[0] * 1000),
        tags={MLFLOW_PARENT_RUN_ID: parent.info.run_id, **tags},
        run_name=name,
    )
    ended = int(span[1] * 1000)
    client.log_batch(
        child.info.run_id,
        metrics=[Metric(k, v, ended, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in flat(params).items()],
    )
    client.set_terminated(child.info.run_id, "FINISHED", end_time=ended)
    return str(child.info.run_id)


def log_metrics(scores: dict[str, dict[str, evaluate.Scores]]) -> None:
    """Every part's overall metrics, model and baselines, as `{part}_{name}_{metric}` (the finite ones)."""
    values = {
        f"{role}_{name}_{metric}": value
        for role, by_name in scores.items()
        for name, result in by_name.items()
        for metric, value in result["overall"]["all"].items()
        if metric != "rows" and np.isfinite(value)
    }
    mlflow.log_metrics(values)


def log_figures(sample: pd.DataFrame, scores: dict[str, evaluate.Scores], importances: dict[str, float]) -> None:
    """The validation month's figures: predicted against actual, residuals by hour, RMSE by borough, and the
    feature importances when the model has them."""
    y, p, hour = sample[TARGET].to_numpy(), sample[evaluate.MODEL].to_numpy(), sample[evaluate.HOUR].to_numpy()
    figures = {
        "plots/predicted_vs_actual.png": plots.predicted_vs_actual(y, p, "Validation month: predicted vs actual"),
        "plots/residuals_by_hour.png": plots.residuals_by_hour(y, p, hour, "Validation month: residuals by hour"),
        "plots/rmse_by_borough.png": plots.rmse_by_borough(scores, "Validation RMSE by pickup borough"),
    }
    if importances:
        figures["plots/feature_importance.png"] = plots.feature_importance(importances, "Feature importance (gain)")
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)
