"""`taxi-duration evaluate|dashboard`: score a model on any trips, and the dashboard over what the jobs wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from taxi_duration.cli.common import (
    ConfigOpt,
    EngineOpt,
    MoreDataArg,
    OutJsonOpt,
    SparkMasterOpt,
    console,
    settings_from,
    spark_for,
    write_json,
)
from taxi_duration.core.config import DEFAULT_MODEL, MODEL_NAME


def evaluate(
    model: Annotated[str, typer.Option(help=f"Model URI: {DEFAULT_MODEL}, models:/{MODEL_NAME}/3, runs:/ID/model.")],
    data: Annotated[list[str], typer.Option(help="Trip files, globs or folders to score.")],
    more: MoreDataArg = None,
    legacy_train: Annotated[
        list[str] | None,
        typer.Option(
            help="Also fit the team's old model (RandomForest, 8 features, 30 s - 6 h filter) on these trips "
            "with coordinates and score it on the same rows."
        ),
    ] = None,
    engine: EngineOpt = None,
    out: OutJsonOpt = None,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Also write every scored trip (inputs, actual and predicted minutes) to this Parquet file."),
    ] = None,
    spark_master: SparkMasterOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Score a model on any trip files: RMSE, MAE, R2, RMSLE and rows, next to the baselines it carries."""
    from taxi_duration.cli import render
    from taxi_duration.ingest.inputs import check_all, discover
    from taxi_duration.monitor.scorecard import score_files

    settings = settings_from(config, engine, spark_master=spark_master)
    spark = spark_for(settings)
    files = check_all(discover([*data, *(more or [])], spark))
    old = check_all(discover(legacy_train, spark)) if legacy_train else None
    with console.status(f"scoring {model} on {sum(f.rows for f in files):,} rows"):
        result = score_files(settings, model, files, legacy_train=old, predictions_path=predictions)
    table = render.metrics_table(f"{model} on {result['data']['scored_rows']:,} trips", result["metrics"])
    Console().print(table)
    write_json(out, result)


def dashboard(
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 for every interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8501,
    metrics_url: Annotated[
        str | None, typer.Option(help="A running server's /metrics for the Live page [default: 127.0.0.1:8000].")
    ] = None,
    reports: Annotated[
        Path | None, typer.Option(help="Folder searched for validate reports and drift outputs [default: data dir].")
    ] = None,
    stream: Annotated[Path | None, typer.Option(help="A `stream --output` folder, for the Live page.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Open the dashboard: champion, data quality, model, drift, live serving and a travel-time map.

    A web app (Streamlit) over what the other commands wrote: the MLflow store and registry, `validate`
    reports and `drift` outputs under --reports, a server's /metrics and a stream's output. A page whose
    source is absent says so and names the command that makes it. Open http://HOST:PORT in a browser.
    """
    from taxi_duration.monitor.dashboard.launch import run as run_dashboard

    settings = settings_from(
        config, dashboard_metrics_url=metrics_url, dashboard_reports=reports, dashboard_stream=stream
    )
    console.print(f"dashboard on http://{host}:{port} (MLflow store {settings.mlflow_tracking_uri}); Ctrl-C stops it")
    run_dashboard(settings, host, port)
