"""Outputs that appear whole or not at all: everything is written under a temporary sibling, then renamed.

A crash, a Ctrl-C or a bad input half-way leaves the target as it was before the command ran. A process
killed outright (SIGKILL, out of memory) cannot clean up, so every temporary name carries its run's tag (pid
and process start time), and the next run writing beside it removes the leftovers of runs that are gone:
never those of a live run (two may write at once), nor of a new process that got a dead one's pid.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar, cast

import psutil

from taxi_duration.core.errors import UsageError
from taxi_duration.core.storage import Location, remove_tree, rename

P = TypeVar("P", bound=Location)  # a local path in, a local path out; a HadoopPath in, a HadoopPath out


def run_tag(pid: int | None = None) -> str:
    """`pid-starttime` of a process (default: this one), unique even when pids are reused."""
    process = psutil.Process(pid)
    return f"{process.pid}-{int(process.create_time())}"


def tag_is_gone(tag: str) -> bool:
    """True when the run `run_tag` named has ended (a malformed tag is never taken for gone)."""
    pid, _, started = tag.partition("-")
    if not (pid.isdigit() and started.isdigit()):
        return False
    try:
        return run_tag(int(pid)) != tag
    except psutil.NoSuchProcess:
        return True


def remove_leftovers(folder: Location, prefix: str) -> None:
    """Remove `folder/<prefix><tag>-...` entries whose run has ended."""
    for path in folder.glob(f"{prefix}*"):
        tag = "-".join(path.name.removeprefix(prefix).split("-")[:2])
        if not tag_is_gone(tag):
            continue
        if path.is_dir():
            remove_tree(path)
        else:
            path.unlink(missing_ok=True)


def remove_temp_files(folder: Path) -> None:
    """Remove the temporary files `atomic_file` left in `folder` for targets of any name, when their run has
    ended (a writer killed between writing and renaming)."""
    for path in folder.glob(".*.tmp-*"):
        tag = "-".join(path.name.rpartition(".tmp-")[2].split("-")[:2])
        if path.is_file() and tag_is_gone(tag):
            path.unlink(missing_ok=True)


def _prefix(target: Location) -> str:
    return f".{target.name}.tmp-"


def _temp_sibling(target: P) -> P:
    return cast(P, target.with_name(f"{_prefix(target)}{run_tag()}-{uuid.uuid4().hex[:8]}"))


@contextmanager
def atomic_dir(target: P, *, overwrite: bool = False) -> Iterator[P]:
    """Yield a fresh temporary directory that replaces `target` when the block succeeds (a local path, or on
    the Spark path a `HadoopPath`: whole or absent wherever its filesystem renames a folder atomically).

    Raises:
        UsageError: `target` exists, is not empty, and `overwrite` is false.
    """
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise UsageError(f"{target} exists and is not empty; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target.parent, _prefix(target))
    tmp = _temp_sibling(target)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        remove_tree(tmp)
        raise
    old = None
    if target.exists():
        old = _temp_sibling(target)
        rename(target, old)
    rename(tmp, target)
    if old is not None:
        remove_tree(old)


@contextmanager
def atomic_file(target: Path) -> Iterator[Path]:
    """Yield a temporary path in `target`'s folder that is renamed onto `target` when the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
