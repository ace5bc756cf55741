"""`taxi-duration predict|serve`: predictions for a PostgreSQL table in batch, and over HTTP."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Annotated

import typer

from taxi_duration.cli.common import ConfigOpt, OutJsonOpt, console, settings_from, write_json
from taxi_duration.core.config import CHAMPION, DEFAULT_MODEL, PRETRIP_CHAMPION, Settings
from taxi_duration.geo.shapes import shapes_path

if TYPE_CHECKING:  # the API loads FastAPI and the scorer: only `serve` imports them
    from fastapi import FastAPI

    from taxi_duration.serve.holder import Champions


def predict(
    table: Annotated[str, typer.Option(help="PostgreSQL table of trips (TLC or canonical column names).")],
    key: Annotated[str, typer.Option(help="The table's trip id column: predictions are keyed on it.")],
    to: Annotated[str, typer.Option(help="Table the predictions are upserted into (created on first use).")],
    model: Annotated[str, typer.Option(help="Model URI.")] = DEFAULT_MODEL,
    chunk_rows: Annotated[int, typer.Option(help="Trips read, predicted and written at a time.")] = 100_000,
    out: OutJsonOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Score every trip of a PostgreSQL table and upsert the predictions into another table.

    The database is TAXI_DURATION_POSTGRES_URL (or `postgres_url` in taxi-duration.toml):
    postgresql://user:password@host:port/db; its password is never printed. Rows are keyed on
    (KEY, model_version), so re-running a batch replaces its rows instead of adding more. A KEY found on
    several rows is predicted once (its first row that can be) and its other rows are counted as repeated.
    """
    from taxi_duration.ingest.postgres import configured_url
    from taxi_duration.serve.batch import describe, score_table
    from taxi_duration.serve.scorer import load

    settings = settings_from(config)
    url = configured_url(settings)
    scorer = load(settings, model, settings.scratch_dir())
    pinned = scorer.uri
    with console.status(f"scoring {table} with {pinned}"):
        scored = score_table(url, scorer, table, key, to, chunk_rows)
    skipped = ", ".join(f"{n:,} {why}" for why, n in scored.skipped.items()) or "none"
    console.print(
        f"{scored.rows_read:,} trips read, {scored.predicted:,} predicted by {pinned}, skipped: {skipped}; "
        f"{to} holds {scored.table_rows:,} rows"
    )
    write_json(out, {"model": pinned, "table": table, "to": to, **describe(scored)})


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 for every interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    model: Annotated[
        str | None,
        typer.Option(
            help="Model URI to serve; an @alias is followed as it moves. Default: both champions, "
            f"{CHAMPION} (with_distance) and {PRETRIP_CHAMPION}, whichever exist.",
            show_default=False,
        ),
    ] = None,
    poll_seconds: Annotated[
        float, typer.Option(help="Check the registry for a new version this often; 0 turns polling off.")
    ] = 30.0,
    config: ConfigOpt = None,
) -> None:
    """Serve predictions over HTTP: POST /predict and /predict/batch, GET /health, /ready, /model, /metrics.

    The models are the MLflow registry's champions (MLFLOW_TRACKING_URI, else the SQLite store under the data
    dir), served natively without Spark or a JVM: a trip with trip_distance goes to the with_distance one, a
    trip without to the pretrip one, and each answer names its model. When an alias moves, the new version is
    loaded and checked beside the old one, then swapped in (POST /admin/reload does it at once). Set
    TAXI_DURATION_API_KEY to require a key for predictions, TAXI_DURATION_ADMIN_KEY to allow admin calls.
    API docs at http://HOST:PORT/docs.
    """
    import logging

    from taxi_duration.serve.api import create_app
    from taxi_duration.serve.holder import ModelHolder

    settings = settings_from(config)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    holder = ModelHolder(settings, model)
    try:
        with console.status(f"loading {model or 'the champions'}"):
            served = holder.start()
        holder.poll(poll_seconds)
        keys = (settings.api_key, settings.admin_key)
        api_key, admin_key = (k.get_secret_value() if k else None for k in keys)
        app = create_app(holder, api_key, admin_key)
        console.print(_serving_line(settings, served, f"http://{host}:{port}", api_key, admin_key))
        _run_until_stopped(app, host, port)
    finally:
        holder.close()


def _serving_line(settings: Settings, served: Champions, url: str, api_key: str | None, admin_key: str | None) -> str:
    """What `serve` says once the models are loaded: which, where, which keys, and the registry it polls."""
    zones = served.default.zones
    shapes = shapes_path(settings.zone_shapes)
    return (
        f"serving {served.named()} on {url} (docs: /docs); prediction key "
        f"{'on' if api_key else 'off'}, admin calls {'on' if admin_key else 'off'}, "
        f"zones from coordinates {'on' if zones else f'off (no shapes at {shapes})'}; registry "
        f"{settings.mlflow_tracking_uri} (another: --config, or TAXI_DURATION_DATA_DIR or MLFLOW_TRACKING_URI)"
    )


def _run_until_stopped(app: FastAPI, host: str, port: int) -> None:
    """Run the API until SIGINT or SIGTERM; a requested stop returns (exit 0) and says so in one line."""
    import uvicorn

    # uvicorn stops gracefully on SIGTERM and Ctrl-C (requests in flight are answered), then raises the
    # signal again for the handler it found: ours notes it, so a requested stop is exit 0 and a line.
    stops: list[str] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, frame: stops.append(signal.Signals(number).name))
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    if stops:
        console.print(f"serve: stopped by {stops[0]}, every request in flight answered")
