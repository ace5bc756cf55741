"""Finding the JSON reports the commands wrote under the reports folder (`validate`'s, `drift`'s), reading
each, and a `Missing` for each one that cannot be read."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from taxi_duration.ingest.quality import CLEAN_DIR, QUARANTINE_DIR
from taxi_duration.monitor.dashboard.sources.missing import Missing
from taxi_duration.stream.writers import PREDICTIONS
from taxi_duration.stream.writers import QUARANTINE as STREAM_QUARANTINE

# Folders a report search never enters: trip Parquet, MLflow's store, scratch files. Keeps it to milliseconds.
SKIPPED_DIRS = {CLEAN_DIR, QUARANTINE_DIR, PREDICTIONS, STREAM_QUARANTINE, "mlflow", "tmp", "plots"}


def _reports(root: Path, name: str) -> Iterator[Path]:
    """Every file called `name` under `root`, newest folder layout first, skipping trip and store folders."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        if name in files:
            yield Path(folder) / name


def read_reports(
    root: Path,
    name: str,
    read: Callable[[Path, dict[str, Any]], dict[str, Any]],
    what: str,
    remake: Callable[[Path], str],
) -> tuple[list[dict[str, Any]], list[Missing]]:
    """Every JSON file called `name` under `root` as `read(path, document)` makes it, and for each one that
    cannot be read, a `Missing` that says why, with `remake(its folder)`, the command that writes it again."""
    found, problems = [], []
    for path in _reports(root, name):
        try:
            found.append(read(path, json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problems.append(
                Missing(f"{path} is not a readable {what} ({type(exc).__name__}: {exc})", remake(path.parent))
            )
    return found, problems


def none_found(what: str, problems: list[Missing], command: str) -> Missing:
    return Missing(what + (f" ({len(problems)} unreadable)" if problems else ""), command)
