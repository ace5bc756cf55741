"""The `taxi-duration` command: one subcommand per job, a thin layer over the package's functions."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from taxi_duration import __version__
from taxi_duration.cli.bench import bench_app
from taxi_duration.cli.cluster import cluster_app
from taxi_duration.cli.common import (
    ConfigOpt,
    EngineOpt,
    FeatureSetOpt,
    InputsArg,
    MonthDecayOpt,
    MoreDataArg,
    OutJsonOpt,
    SearchOpt,
    SparkMasterOpt,
    TrainMonthsOpt,
    TuneBudgetOpt,
    TuneTrialsOpt,
    console,
    progress_bar,
    settings_from,
    spark_for,
    step_progress,
    write_json,
)
from taxi_duration.cli.drift import drift
from taxi_duration.cli.stream import replay, stream
from taxi_duration.core.config import CHAMPION, DEFAULT_MODEL, MODEL_NAME, PRETRIP_CHAMPION, Settings, main_job_search
from taxi_duration.core.errors import TaxiDurationError, UsageError
from taxi_duration.core.months import parse_months
from taxi_duration.geo.shapes import shapes_path

app = typer.Typer(
    name="taxi-duration",
    help="Predict NYC taxi trip durations: synthesize, download, validate, on DuckDB, pandas or Spark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Typer's rich help panels print a type beside every option, flags included (`--overwrite <bool>`, even
    # `--help <bool>`), as if they took a value; its plain layout shows a type only where a value follows.
    rich_markup_mode=None,
)

DEFAULT_RUN_ROWS = 300_000
SampleRowsOpt = Annotated[
    int | None,
    typer.Option(
        "--sample-rows",
        min=1,
        help="Train on this many training rows, drawn at random, for a quick model (default: every row).",
    ),
]
DEFAULT_RUN_MONTHS = "2023-01..2023-03"


@app.command()
def synth(
    rows: Annotated[str, typer.Option(help="How many trips in all: 200000, 1.5M, 50M, 2B.")] = "1M",
    months: Annotated[str, typer.Option(help="Months to spread them over: 2021-01..2021-03 or 2021-01,2021-05.")] = (
        DEFAULT_RUN_MONTHS
    ),
    out: Annotated[Path, typer.Option(help="Folder for the monthly Parquet files.")] = Path("data/synthetic"),
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 0,
    service: Annotated[str, typer.Option(help="green (lpep_ columns) or yellow (tpep_ columns).")] = "green",
    dirty: Annotated[
        float, typer.Option(help="Scale the shares of dirty rows (0 = clean data, 1 = as in real files).")
    ] = 1.0,
    drift: Annotated[float, typer.Option(help="Per-month shift of speeds and zone mix (0 = every month alike).")] = 0.0,
    chunk_rows: Annotated[
        int, typer.Option(help="Trips made and written at a time: memory grows with it, not with --rows.")
    ] = 1_000_000,
) -> None:
    """Write synthetic TLC-schema trip files that look like the real ones, in constant memory."""
    from taxi_duration.ingest import synth as synthesis

    total = synthesis.parse_rows(rows)
    month_list = parse_months(months)
    shares = synthesis.DirtyShares().scaled(dirty)
    with progress_bar() as progress:
        task = progress.add_task("synthesizing trips", total=total)
        paths = synthesis.generate(
            total,
            month_list,
            out,
            seed=seed,
            service=service,
            dirty=shares,
            drift=drift,
            chunk_rows=chunk_rows,
            on_progress=lambda n: progress.advance(task, n),
        )
    console.print(f"wrote {total:,} trips in {len(paths)} file(s) under {out}")


@app.command()
def download(
    months: Annotated[
        str | None, typer.Option(help="Months to fetch: 2021-01..2021-03 or 2021-01,2021-05 (none: zone files only).")
    ] = None,
    service: Annotated[str, typer.Option(help="yellow, green, fhv or fhvhv.")] = "green",
    dest: Annotated[Path, typer.Option(help="Folder to download into.")] = Path("data/raw"),
    shapes: Annotated[
        bool, typer.Option(help="Also fetch the zone shapefile (taxi_zones.zip), needed for trips with coordinates.")
    ] = False,
) -> None:
    """Fetch monthly TLC trip files and the zone table; re-running resumes or skips what is done."""
    from taxi_duration.ingest import download as fetching

    paths = fetching.download(service, parse_months(months) if months else [], dest, shapes=shapes)
    console.print(f"{len(paths)} file(s) ready under {dest}")


@app.command()
def inspect(inputs: InputsArg, engine: EngineOpt = None, config: ConfigOpt = None) -> None:
    """Check input files without reading them whole: format, rows, service, month, zones, and the column mapping."""
    from taxi_duration.cli import render
    from taxi_duration.ingest.inputs import check_all, discover

    files = check_all(discover(inputs, spark_for(settings_from(config, engine))))
    out = Console()
    out.print(render.inputs_table(files))
    for f in files:
        for line in render.column_mapping(f):
            out.print(line, highlight=False)


@app.command()
def validate(
    inputs: InputsArg,
    out: Annotated[
        str,
        # Text, not a Path: pathlib would turn s3a://bucket/key into s3a:/bucket/key.
        typer.Option(
            help="Output folder: clean/, quarantine/, report.json, report.md (on Spark: any URI it writes).",
            metavar="<path>",
        ),
    ],
    engine: EngineOpt = None,
    features: Annotated[
        bool, typer.Option("--features", help="Also write every model feature and the target (duration_min).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output folder if it exists.")] = False,
    spark_master: SparkMasterOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Split trips into clean and quarantined rows (with reasons), and report counts that reconcile."""
    from taxi_duration.cli import render
    from taxi_duration.core.storage import location
    from taxi_duration.engines.frames import Runtime
    from taxi_duration.ingest.inputs import check_all, discover
    from taxi_duration.ingest.quality import validate as run_validation

    settings = settings_from(config, engine, spark_master=spark_master)
    with console.status(f"starting the {settings.engine} engine"):
        spark = spark_for(settings)
    with console.status("checking input files"):
        files = check_all(discover(inputs, spark))
        folder = location(out, spark)
    runtime = Runtime.open(settings)
    try:
        with console.status(f"validating {sum(f.rows for f in files):,} rows on {settings.engine}"):
            report = run_validation(runtime, files, folder, overwrite=overwrite, features=features)
    finally:
        runtime.close()
    Console().print(render.quality_table(report))
    console.print(render.quality_outputs(report, folder))


@app.command()
def run(
    data: Annotated[
        list[str] | None,
        typer.Option(help="Trip files, globs or folders; default: synthesize a data set under the data dir."),
    ] = None,
    more: MoreDataArg = None,
    engine: EngineOpt = None,
    feature_set: FeatureSetOpt = None,
    train_months: TrainMonthsOpt = None,
    search: SearchOpt = None,
    tune_trials: TuneTrialsOpt = None,
    tune_budget: TuneBudgetOpt = None,
    month_decay: MonthDecayOpt = None,
    sample_rows: SampleRowsOpt = None,
    data_dir: Annotated[Path | None, typer.Option(help="Root for generated data, outputs and MLflow.")] = None,
    out: OutJsonOpt = None,
    spark_master: SparkMasterOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The main job: ingest, validate, featurize, train, evaluate against the baselines, register in MLflow.

    On a fresh clone with no data it first synthesizes three months of trips. Unless a search is set, it
    trains the quick search's small models, and says so (`--search full`: the documented ones, as `train`).
    `--engine spark` runs the big-data pipeline (MLlib) end to end.
    """
    given = settings_from(
        config,
        engine,
        data_dir=data_dir,
        feature_set=feature_set,
        search=search,
        tune_trials=tune_trials,
        tune_budget_s=tune_budget,
        month_decay=month_decay,
        train_sample_rows=sample_rows,
        spark_master=spark_master,
    )
    settings, note = main_job_search(given)
    if note:
        console.print(note, highlight=False)
    data = [*(data or []), *(more or [])]
    if not data:
        synthetic = settings.data_dir / "synthetic"
        if not any(synthetic.glob("*.parquet")):
            synth(rows=str(DEFAULT_RUN_ROWS), months=DEFAULT_RUN_MONTHS, out=synthetic, seed=0)
        data = [str(synthetic)]
    _train(settings, data, train_months, out)


@app.command()
def train(
    data: Annotated[list[str], typer.Option(help="Trip files, globs or folders covering every month of the split.")],
    more: MoreDataArg = None,
    engine: EngineOpt = None,
    feature_set: FeatureSetOpt = None,
    train_months: TrainMonthsOpt = None,
    search: SearchOpt = None,
    tune_trials: TuneTrialsOpt = None,
    tune_budget: TuneBudgetOpt = None,
    month_decay: MonthDecayOpt = None,
    sample_rows: SampleRowsOpt = None,
    validate_data: Annotated[
        list[str] | None,
        typer.Option(
            help="Validation files, for data split by file rather than by month (the Kaggle trips); needs --test-data."
        ),
    ] = None,
    test_data: Annotated[list[str] | None, typer.Option(help="Test files, with --validate-data.")] = None,
    out: OutJsonOpt = None,
    spark_master: SparkMasterOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Train on a time-honest split, score against the baselines, log to MLflow, register the model.

    The split is by month: the last two months are held out, or the two after --train-months. A data set
    its publisher split by file (the Kaggle trips) names its parts: --data for training, --validate-data
    and --test-data. The `champion` alias moves to the new version only if it beats the current champion
    on the same validation data. The tracking store is MLFLOW_TRACKING_URI when set, else SQLite under the
    data dir.
    """
    settings = settings_from(
        config,
        engine,
        feature_set=feature_set,
        search=search,
        tune_trials=tune_trials,
        tune_budget_s=tune_budget,
        month_decay=month_decay,
        train_sample_rows=sample_rows,
        spark_master=spark_master,
    )
    _train(settings, [*data, *(more or [])], train_months, out, validate_data, test_data)


@app.command()
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


@app.command()
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
    from taxi_duration.serve.batch import describe, score_table
    from taxi_duration.serve.scorer import load

    settings = settings_from(config)
    if settings.postgres_url is None:
        raise UsageError("no database: set TAXI_DURATION_POSTGRES_URL=postgresql://user:password@host:port/db")
    url = settings.postgres_url.get_secret_value()
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


@app.command()
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

    import uvicorn

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
        zones = served.default.zones
        shapes = shapes_path(settings.zone_shapes)
        console.print(
            f"serving {served.named()} on http://{host}:{port} (docs: /docs); prediction key "
            f"{'on' if api_key else 'off'}, admin calls {'on' if admin_key else 'off'}, "
            f"zones from coordinates {'on' if zones else f'off (no shapes at {shapes})'}; registry "
            f"{settings.mlflow_tracking_uri} (another: --config, or TAXI_DURATION_DATA_DIR or MLFLOW_TRACKING_URI)"
        )
        # uvicorn stops gracefully on SIGTERM and Ctrl-C (requests in flight are answered), then raises the
        # signal again for the handler it found: ours notes it, so a requested stop is exit 0 and a line.
        stops: list[str] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda number, frame: stops.append(signal.Signals(number).name))
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        if stops:
            console.print(f"serve: stopped by {stops[0]}, every request in flight answered")
    finally:
        holder.close()


@app.command()
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


def _train(
    settings: Settings,
    data: list[str],
    train_months: str | None,
    out: Path | None,
    validate_data: list[str] | None = None,
    test_data: list[str] | None = None,
) -> None:
    from taxi_duration.ingest.inputs import check_all, discover
    from taxi_duration.train import splits
    from taxi_duration.train.job import STEPS, outcome_json
    from taxi_duration.train.job import train as run_training

    with console.status("checking input files"):
        spark = spark_for(settings)
        files = check_all(discover(data, spark))
        validate_files, test_files = (check_all(discover(p, spark)) if p else [] for p in (validate_data, test_data))
    split = splits.choose(files, train_months, validate_files, test_files)
    files = [*files, *validate_files, *test_files]
    sample = f"; training on a sample of {settings.train_sample_rows:,} rows" if settings.train_sample_rows else ""
    console.print(f"{split}; {settings.feature_set} features; {settings.engine} engine{sample}")
    # The MLflow store and the engine open before the first step (a Spark session takes its seconds).
    with step_progress("opening the MLflow store and the engine", STEPS) as (on_step, on_progress):
        outcome = run_training(settings, files, split, settings.feature_set, on_step, on_progress)
    _print_outcome(outcome)
    write_json(out, outcome_json(outcome))


def _print_outcome(outcome: Any) -> None:
    from taxi_duration.cli import render

    out = Console()
    out.print(render.data_table(outcome))
    if outcome.trained_rows < outcome.rows["train"]:
        out.print(f"trained on a sample of {outcome.trained_rows:,} of {outcome.rows['train']:,} training rows")
    title = f"Validation metrics, minutes ({outcome.engine}: {outcome.chosen}, {outcome.feature_set})"
    out.print(render.metrics_table(title, outcome.overall("validate"), outcome.overall("test")))
    d = outcome.decision
    status = f"[green]now the {d.alias}[/green]" if d.promoted else "[yellow]not promoted[/yellow]"
    out.print(f"model: taxi-duration v{d.version}, {status}: {d.reason}")
    out.print(f"MLflow run {outcome.run_id} in {outcome.tracking_uri}; open it with:", soft_wrap=True)
    out.print(outcome.ui_command, soft_wrap=True, markup=False, highlight=False)  # one line, to copy whole
    steps = ", ".join(f"{name} {s:.0f} s" for name, s in outcome.step_s.items())
    out.print(f"done in {outcome.elapsed_s:.0f} s ({steps})")


# Added after the commands above: the help lists them after them.
app.command()(drift)
app.command()(stream)
app.command()(replay)
app.add_typer(bench_app, name="bench")
app.add_typer(cluster_app, name="cluster")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        print(__version__)
        raise typer.Exit()


def main() -> None:
    """Entry point: run the app, turning the project's errors into one clear line and an exit code."""
    # SIGTERM (`kill`, a container stopping) unwinds like Ctrl-C, so temporary folders are removed on the way.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        app()
    except TaxiDurationError as exc:
        console.print(f"[red]{exc.label}:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]: no partial output was left behind")
        sys.exit(130)
