"""What the `taxi-duration` commands share: the console their messages go to, the options several of them
take (one by one, or as a dataclass: `takes_options`), settings from those, the progress bar, the --out JSON.
Used by every module of `cli/`."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from taxi_duration.core.atomic import atomic_file
from taxi_duration.core.config import Engine, FeatureSet, Settings, load_settings

if TYPE_CHECKING:  # the trainer loads MLflow: only the commands that train import it
    from pyspark.sql import SparkSession

    from taxi_duration.train.job import OnProgress

console = Console(stderr=True, soft_wrap=True)  # one message, one line, also in logs

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
SparkMasterOpt = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="Where Spark runs: local[*] (default), spark://host:7077 (`taxi-duration cluster up` prints one), "
        "yarn, k8s://... Default from settings (TAXI_DURATION_SPARK_MASTER).",
        show_default=False,
    ),
]
InputsArg = Annotated[
    list[str],
    typer.Argument(
        help="Trip files (.parquet, .csv, .jsonl), globs or folders; with --engine spark, any URI Spark reads."
    ),
]
FeatureSetOpt = Annotated[
    FeatureSet | None,
    typer.Option(
        "--feature-set",
        help="with_distance (adds the metered distance, as the course does; default) or pretrip (known at booking).",
        show_default=False,
    ),
]
TrainMonthsOpt = Annotated[
    str | None,
    typer.Option(
        "--train-months",
        help="Months to train on (2023-01 or 2023-01..2023-02); the next month validates, the one after tests. "
        "Default: every month of the data but the last two.",
        show_default=False,
    ),
]
# `--data a.parquet b.parquet` (what a shell glob after --data gives) and `--data a --data b` both work: the
# values after the first one arrive as arguments and are merged.
MoreDataArg = Annotated[list[str] | None, typer.Argument(help="More trip files, globs or folders.", show_default=False)]
SearchOpt = Annotated[
    str | None,
    typer.Option(
        "--search",
        help="full: the documented models (`train`'s default); quick: small ones (`run`'s default), for a smoke test; "
        "tune: an Optuna study (the `tune` extra) over LightGBM's parameters on the embedded engines; on Spark "
        "over XGBoost's, its trials as tasks on the executors, beside a wider grid; both refit the choice on the "
        "training and validation months.",
    ),
]
TuneTrialsOpt = Annotated[
    int | None,
    typer.Option("--tune-trials", help="--search tune: at most this many trials [default: 50].", show_default=False),
]
TuneBudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--tune-budget",
        help="--search tune: seconds after which no trial (on Spark: no candidate) starts [default: 600].",
        show_default=False,
    ),
]
MonthDecayOpt = Annotated[
    float | None,
    typer.Option(
        "--month-decay",
        help="With several training months, how much less each older month weighs (0.8: a month before the "
        "newest weighs 0.8, two before 0.64) [default: 1, every month the same]; --search tune chooses it.",
        show_default=False,
    ),
]
OutJsonOpt = Annotated[Path | None, typer.Option("--out", help="Also write the results to this JSON file.")]


def spark_for(settings: Settings) -> SparkSession | None:
    """The Spark session when the command runs on Spark (inputs and outputs are then found through its
    Hadoop filesystems: `core/storage.py`), else None."""
    if settings.engine is not Engine.SPARK:
        return None
    from taxi_duration.engines.spark import session_for

    return session_for(settings)


def settings_from(config: Path | None, engine: str | None = None, **overrides: Any) -> Settings:
    """Settings from the --config file (or the default one), the --engine name and other options given."""
    return load_settings(config, engine=Engine.parse(engine) if engine else None, **overrides)


def takes_options(command: Callable[..., None]) -> Callable[..., None]:
    """Let a command take a dataclass of options as one keyword-only parameter, for options several commands share.

    Typer reads options from a function's parameters only: the command it is given lists the dataclass's
    fields (their `Annotated` types and defaults) where that parameter stands, and builds the dataclass from
    them before calling `command`.

    Args:
        command: A command with one keyword-only parameter annotated with a dataclass whose fields are options.

    Returns:
        The command as Typer should register it.
    """
    hints = get_type_hints(command, include_extras=True)
    signature = inspect.signature(command)
    name = next(p.name for p in signature.parameters.values() if dataclasses.is_dataclass(hints[p.name]))
    options: type[Any] = hints[name]
    option_hints = get_type_hints(options, include_extras=True)
    shared = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=option_hints[f.name])
        for f in dataclasses.fields(options)
    ]
    parameters: list[inspect.Parameter] = []
    for p in signature.parameters.values():
        parameters.extend(shared if p.name == name else [p.replace(annotation=hints[p.name])])

    @functools.wraps(command)
    def with_options(**given: Any) -> None:
        chosen = options(**{p.name: given.pop(p.name) for p in shared})
        command(**given, **{name: chosen})

    # Typer reads the signature and the annotations: both name the fields, already resolved.
    with_options.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_options.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return with_options


def progress_bar() -> Progress:
    """A progress display on the console: description, bar, done / total, elapsed, remaining."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@contextmanager
def step_progress(title: str, steps: Sequence[str]) -> Iterator[tuple[Callable[[str], None], OnProgress]]:
    """A progress bar over a job's named `steps`, with the current step's own progress under it: yields the
    job's `on_step(step)` and `on_progress(what, done, total)` callbacks; marked done when the job returns."""
    with progress_bar() as progress:
        task = progress.add_task(title, total=len(steps))
        within = progress.add_task("", total=None, visible=False)  # rounds, candidates, parts: under the step
        seen: list[str] = []

        def on_step(step: str) -> None:
            if seen:
                progress.advance(task)
            seen.append(step)
            progress.reset(within, visible=False)  # its clock and estimate start with the next step
            if step in steps:
                progress.update(task, description=step)

        def on_progress(what: str, done: int, total: int) -> None:
            progress.update(within, description=f"  {what}", completed=done, total=total, visible=True)

        yield on_step, on_progress
        progress.update(task, completed=len(steps), description="done")


def write_json(out: Path | None, document: dict[str, Any]) -> None:
    """Write a command's results to `out` (as a whole or not at all), when --out was given."""
    if out is None:
        return
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(document, indent=2, default=str) + "\n")
    console.print(f"results in {out}")
