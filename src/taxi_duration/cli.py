"""The `taxi-duration` command: one subcommand per job, a thin layer over the package's functions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from taxi_duration import __version__
from taxi_duration.config import Engine, Settings, load_settings
from taxi_duration.errors import TaxiDurationError, UsageError
from taxi_duration.months import parse_months

app = typer.Typer(
    name="taxi-duration",
    help="Predict NYC taxi trip durations: synthesize, download, validate, on DuckDB, pandas or Spark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # one message, one line, also in logs

DEFAULT_RUN_ROWS = 300_000
DEFAULT_RUN_MONTHS = "2023-01..2023-03"

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (default: ./taxi-duration.toml if present).")
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine",
        "-e",
        help="duckdb (embedded, default; alias: local), pandas, or spark. Default from settings.",
        show_default=False,
    ),
]
InputsArg = Annotated[list[str], typer.Argument(help="Trip files (.parquet, .csv, .jsonl), globs or folders.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace the output folder if it exists.")]


def _settings(config: Path | None, engine: str | None = None, **overrides: Any) -> Settings:
    try:
        parsed = Engine.parse(engine) if engine else None
    except ValueError as exc:
        raise UsageError(f"unknown engine {engine!r}: choose duckdb (or local), pandas or spark") from exc
    return load_settings(config, engine=parsed, **overrides)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


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
    from taxi_duration import synth as synthesis

    total = synthesis.parse_rows(rows)
    month_list = parse_months(months)
    shares = synthesis.DirtyShares().scaled(dirty)
    with _progress() as progress:
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
    months: Annotated[str, typer.Option(help="Months to fetch: 2021-01..2021-03 or 2021-01,2021-05.")],
    service: Annotated[str, typer.Option(help="yellow, green, fhv or fhvhv.")] = "green",
    dest: Annotated[Path, typer.Option(help="Folder to download into.")] = Path("data/raw"),
    shapes: Annotated[bool, typer.Option(help="Also fetch the zone shapefile (taxi_zones.zip).")] = False,
) -> None:
    """Fetch monthly TLC trip files and the zone table; re-running resumes or skips what is done."""
    from taxi_duration import download as fetching

    paths = fetching.download(service, parse_months(months), dest, shapes=shapes)
    console.print(f"{len(paths)} file(s) ready under {dest}")


@app.command()
def inspect(inputs: InputsArg) -> None:
    """Check input files without reading them whole: format, rows, service, month, and the column mapping."""
    from taxi_duration import schema
    from taxi_duration.inputs import check_all, discover

    table = Table("file", "format", "rows", "service", "month", "columns mapped / in file")
    for f in check_all(discover(inputs)):
        mapped = schema.resolve_aliases(list(f.columns))
        table.add_row(
            str(f.path),
            f.format,
            f"{f.rows:,}",
            f.service or "?",
            str(f.month or "?"),
            f"{len(mapped)}/{len(f.columns)}",
        )
    Console().print(table)


@app.command()
def validate(
    inputs: InputsArg,
    out: Annotated[Path, typer.Option(help="Output folder: clean/, quarantine/, report.json, report.md.")],
    engine: EngineOpt = None,
    features: Annotated[
        bool, typer.Option("--features", help="Also write every model feature and the target (duration_min).")
    ] = False,
    overwrite: OverwriteOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Split trips into clean and quarantined rows (with reasons), and report counts that reconcile."""
    settings = _settings(config, engine)
    report = _validate(settings, inputs, out, overwrite, features)
    _print_report(report, out)


@app.command()
def run(
    data: Annotated[
        list[str] | None,
        typer.Option(help="Trip files, globs or folders; default: synthesize a data set under the data dir."),
    ] = None,
    engine: EngineOpt = None,
    data_dir: Annotated[Path | None, typer.Option(help="Root for generated data and outputs.")] = None,
    config: ConfigOpt = None,
) -> None:
    """The main job: get data (synthesizing it on a fresh clone), validate it, and report its quality."""
    settings = _settings(config, engine, data_dir=data_dir)
    if not data:
        synthetic = settings.data_dir / "synthetic"
        if not any(synthetic.glob("*.parquet")):
            synth(rows=str(DEFAULT_RUN_ROWS), months=DEFAULT_RUN_MONTHS, out=synthetic, seed=0)
        data = [str(synthetic)]
    out = settings.data_dir / "validated"
    report = _validate(settings, data, out, overwrite=True)
    _print_report(report, out)


def _validate(settings: Settings, inputs: list[str], out: Path, overwrite: bool, features: bool = False) -> Any:
    from taxi_duration.engines import Runtime
    from taxi_duration.inputs import check_all, discover
    from taxi_duration.quality import validate as run_validation

    with console.status("checking input files"):
        files = check_all(discover(inputs))
    with console.status(f"starting the {settings.engine} engine"):
        runtime = Runtime.open(settings)
    try:
        with console.status(f"validating {sum(f.rows for f in files):,} rows on {settings.engine}"):
            return run_validation(runtime, files, out, overwrite=overwrite, features=features)
    finally:
        runtime.close()


def _print_report(report: Any, out: Path) -> None:
    from taxi_duration.validation import REPAIRS, RULES

    share = 100 / report.input_rows if report.input_rows else 0.0
    table = Table(title=f"Data quality ({report.engine}, {report.elapsed_s:.1f} s)", title_justify="left")
    table.add_column("rows")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    for label, n in (
        ("input", report.input_rows),
        ("clean", report.clean_rows),
        ("quarantined", report.quarantined_rows),
    ):
        table.add_row(f"[bold]{label}", f"{n:,}", f"{n * share:.2f}%")
    for rule in RULES:
        if n := report.by_reason[rule.code]:
            table.add_row(f"  {rule.code}", f"{n:,}", f"{n * share:.2f}%")
    for repair in REPAIRS:
        if n := report.repaired[repair.code]:
            table.add_row(f"repaired: {repair.code}", f"{n:,}", f"{n * share:.2f}%")
    Console().print(table)
    console.print(
        f"clean rows in {out / 'clean'}, quarantined in {out / 'quarantine'}, report in {out / 'report.json'}"
    )


bench_app = typer.Typer(help="Measure the project against its baselines.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("engines")
def bench_engines(
    rows: Annotated[str, typer.Option(help="Sizes, comma-separated: 1M,10M,50M.")] = "1M,10M,50M",
    engines: Annotated[
        str, typer.Option(help="Comma-separated: duckdb, pandas, spark (ours), duckdb-sql, pyspark (references).")
    ] = "duckdb,duckdb-sql,pandas,spark,pyspark",
    out: Annotated[Path, typer.Option(help="Folder for results.json, results.md, results.png.")] = Path(
        "benchmarks/results"
    ),
    data_dir: Annotated[Path, typer.Option(help="Where synthetic inputs are made once and reused.")] = Path(
        "data/bench"
    ),
    memory_limit: Annotated[
        str | None, typer.Option(help="Cap each run's process tree (cgroup), e.g. 4GiB: shows who fits.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds after which a run is killed and marked failed.")
    ] = None,
) -> None:
    """The same job (read -> validate -> features -> write) on every engine and on hand-written references."""
    from taxi_duration.bench import engines as bench
    from taxi_duration.bench.measure import parse_bytes
    from taxi_duration.synth import parse_rows

    sizes = [parse_rows(r) for r in rows.split(",")]
    chosen = [e.strip() for e in engines.split(",")]
    cap = parse_bytes(memory_limit) if memory_limit else None
    data_dir.mkdir(parents=True, exist_ok=True)
    with _progress() as progress:
        task = progress.add_task("benchmark runs", total=len(sizes) * len(chosen))

        def report(r: bench.Result) -> None:
            progress.advance(task)
            status = "ok" if r.ok else f"FAILED {r.error}"
            progress.console.print(
                f"{r.engine:>10} {r.rows:>12,} rows {r.wall_s:8.1f} s {r.peak_rss_bytes / 2**20:8,.0f} MiB  {status}"
            )

        results = bench.run(sizes, chosen, data_dir, memory_limit=cap, timeout=timeout, on_result=report)
    bench.write(results, out, memory_limit=cap)
    print(bench.markdown(results, cap))
    console.print(f"results in {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        print(__version__)
        raise typer.Exit()


def main() -> None:
    """Entry point: run the app, turning the project's errors into one clear line and an exit code."""
    try:
        app()
    except TaxiDurationError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]: no partial output was left behind")
        sys.exit(130)
