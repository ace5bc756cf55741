"""Outputs that appear whole or not at all: everything is written under a temporary sibling, then renamed.

A crash, a Ctrl-C or a bad input half-way leaves the target as it was before the command ran.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from taxi_duration.errors import UsageError


def _temp_sibling(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_dir(target: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory that replaces `target` when the block succeeds.

    Raises:
        UsageError: `target` exists, is not empty, and `overwrite` is false.
    """
    target = Path(target)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise UsageError(f"{target} exists and is not empty; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = _temp_sibling(target)
        target.rename(old)
    tmp.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
