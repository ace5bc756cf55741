"""The `taxi-duration` command: the app, its commands in the order the help lists them, and the entry point.

Each command lives with its kind (`data`, `train`, `serve`, `monitor`, `drift`, `stream`, and the `bench` and
`cluster` sub-apps); here they are only registered, and the project's errors become one line and an exit code.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import typer

from taxi_duration import __version__
from taxi_duration.cli.bench import bench_app
from taxi_duration.cli.cluster import cluster_app
from taxi_duration.cli.common import console
from taxi_duration.cli.data import download, inspect, synth, validate
from taxi_duration.cli.drift import drift
from taxi_duration.cli.monitor import dashboard, evaluate
from taxi_duration.cli.serve import predict, serve
from taxi_duration.cli.stream import replay, stream
from taxi_duration.cli.train import run, train
from taxi_duration.core.errors import TaxiDurationError

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

for command in (
    synth,
    download,
    inspect,
    validate,
    run,
    train,
    evaluate,
    predict,
    serve,
    dashboard,
    drift,
    stream,
    replay,
):
    app.command()(command)
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
