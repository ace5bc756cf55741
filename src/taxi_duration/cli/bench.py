"""`taxi-duration bench`: the benchmark commands, a sub-app that `cli/main.py` adds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taxi_duration.cli.common import ConfigOpt, console, progress_bar, settings_from
from taxi_duration.core.config import DEFAULT_MODEL

bench_app = typer.Typer(help="Measure the project against its baselines.", no_args_is_help=True)


@bench_app.command("engines")
def bench_engines(
    rows: Annotated[str, typer.Option(help="Sizes, comma-separated: 1M,10M,50M.")] = "1M,10M,50M",
    engines: Annotated[
        str,
        typer.Option(help="Comma-separated: duckdb, pandas, spark (ours); duckdb-sql, pyspark, polars (references)."),
    ] = "duckdb,duckdb-sql,pandas,spark,pyspark,polars",
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
    from taxi_duration.cli import render
    from taxi_duration.ingest.synth import parse_rows
    from taxi_duration.ops.bench import engines as bench
    from taxi_duration.ops.bench.measure import parse_bytes

    sizes = [parse_rows(r) for r in rows.split(",")]
    chosen = [e.strip() for e in engines.split(",")]
    cap = parse_bytes(memory_limit) if memory_limit else None
    data_dir.mkdir(parents=True, exist_ok=True)
    with progress_bar() as progress:
        task = progress.add_task("benchmark runs", total=len(sizes) * len(chosen))

        def report(r: bench.Result) -> None:
            progress.advance(task)
            progress.console.print(render.bench_result(r))

        results = bench.run(sizes, chosen, data_dir, memory_limit=cap, timeout=timeout, on_result=report)
    bench.write(results, out, memory_limit=cap)
    print(bench.markdown(results, cap))
    console.print(f"results in {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")


@bench_app.command("serve")
def bench_serve(
    duration: Annotated[float, typer.Option(help="Seconds of load per server and endpoint (after a warm-up).")] = 60.0,
    out: Annotated[Path, typer.Option(help="Folder for results.json and results.md.")] = Path(
        "benchmarks/results/serve"
    ),
    model: Annotated[str, typer.Option(help="Model URI both servers serve.")] = DEFAULT_MODEL,
    connections: Annotated[int, typer.Option(help="Concurrent connections the load generator keeps open.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Trips per batch request.")] = 100,
    soak: Annotated[float, typer.Option(help="Then keep /predict under load this many seconds, sampling RSS.")] = 0.0,
    port: Annotated[int, typer.Option(help="Our server's port; MLflow's is the next one.")] = 8710,
    config: ConfigOpt = None,
) -> None:
    """Our API against `mlflow models serve` on the same model: in-process model time, then requests/s and
    p50/p99 over loopback for one trip and for batches (wrk, in its own process), zero errors expected."""
    from taxi_duration.ops.bench import serve as bench

    settings = settings_from(config)
    with console.status("benchmark") as status:
        results = bench.run(
            settings,
            model,
            out,
            duration=duration,
            connections=connections,
            batch_size=batch_size,
            soak_s=soak,
            port=port,
            on_step=lambda step: status.update(step),
        )
    print(bench.markdown(results))
    console.print(f"results in {out / 'results.json'} and {out / 'results.md'}")
