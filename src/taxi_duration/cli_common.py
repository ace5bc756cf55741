"""What every `taxi-duration` command shares: the console its messages go to, the --config option,
settings from it, the progress bar. Used by `cli.py` and by the sub-apps it adds (`bench/cli.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from taxi_duration.config import Engine, Settings, load_settings

console = Console(stderr=True, soft_wrap=True)  # one message, one line, also in logs

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML settings file (default: ./taxi-duration.toml if present).")
]


def settings_from(config: Path | None, engine: str | None = None, **overrides: Any) -> Settings:
    """Settings from the --config file (or the default one), the --engine name and other options given."""
    return load_settings(config, engine=Engine.parse(engine) if engine else None, **overrides)


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
