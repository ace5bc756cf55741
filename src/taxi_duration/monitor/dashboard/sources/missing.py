"""What every source answers when it has nothing to show: `Missing`, and the command that makes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Missing:
    """A source a panel cannot show: what is missing, and the command that makes it."""

    what: str
    command: str
