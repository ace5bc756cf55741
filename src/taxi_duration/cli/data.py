"""`taxi-duration synth|download|inspect|validate`: the commands that make, fetch, check and clean trip files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from taxi_duration.cli.common import (
    ConfigOpt,
    EngineOpt,
    InputsArg,
    SparkMasterOpt,
    console,
    progress_bar,
    settings_from,
    spark_for,
)
from taxi_duration.core.months import parse_months

DEFAULT_MONTHS = "2023-01..2023-03"


def synth(
    rows: Annotated[str, typer.Option(help="How many trips in all: 200000, 1.5M, 50M, 2B.")] = "1M",
    months: Annotated[str, typer.Option(help="Months to spread them over: 2021-01..2021-03 or 2021-01,2021-05.")] = (
        DEFAULT_MONTHS
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
