"""The landing folder's contract, kept by the stream: every landed byte read once, whole lines, in a stable order.

Spark's file source lists a folder and reads each new file once, up to the length it had when listed: the
rest of a file still being written is never read; files with one modification time are taken in any order.
So the stream does not point Spark at the landing folder. Its driver admits landed files into the
checkpoint's `admitted/` folder, and Spark reads that folder, whose files never change:

- A file is admitted once it has not changed for `settle_s` (one still being written waits for a later look),
  copied byte for byte as `<sequence>-<name>`: names and modification times follow the admission order.
- Bytes appended to a file after it was admitted are admitted later as a part of their own, so a producer
  that writes in place loses nothing. A file is cut at its last newline; a last line with no newline is
  admitted once the file has been quiet for `TAIL_QUIET_FACTOR` times `settle_s` (or at once by a run that
  takes what has landed and stops).
- `.gz` files (`x.jsonl.gz`) are checked to decompress whole, then admitted whole; Spark's text source reads
  them. A file that does not decompress, or that shrinks or changes after it was admitted, is refused aloud,
  once, with its name; it is never half read.
- The admitted parts are the record: a file's bytes admitted are the sum of its parts' sizes, and a part
  appears by rename, so a driver killed at any moment admits nothing twice and nothing is lost.

Hand-written because no library does this for a local folder: Auto Loader does it for cloud storage, on
Databricks only.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taxi_duration.core.atomic import atomic_file, remove_temp_files

EVENT_SUFFIXES = (".jsonl", ".json", ".ndjson")
GZIP = ".gz"
ADMITTED = "admitted"
MILLISECOND_NS = 1_000_000
# A last line with no newline waits this many settle times: a writer that paused mid-line has long finished.
TAIL_QUIET_FACTOR = 10
PART_NAME = r"^(\d{8})-(.+)$"  # an admitted part: its sequence number, then the landed file's name
_PART = re.compile(PART_NAME)
_CHUNK = 1 << 20


def is_event_file(name: str) -> bool:
    """An event file's name: `.jsonl`, `.json` or `.ndjson`, optionally `.gz`; hidden names never are."""
    return name[:1] not in "._" and name.removesuffix(GZIP).endswith(EVENT_SUFFIXES)


def later_than(path: Path, previous_ns: int) -> int:
    """Give `path` a modification time at least a millisecond after `previous_ns`, and return it.

    Spark's file source takes files in modification-time order, to the millisecond: files written within one
    millisecond would be taken in any order."""
    stat = path.stat()
    if stat.st_mtime_ns < previous_ns + MILLISECOND_NS:
        os.utime(path, ns=(stat.st_atime_ns, previous_ns + MILLISECOND_NS))
    return path.stat().st_mtime_ns


@dataclass
class Look:
    """What one look at the landing folder found."""

    admitted: list[Path] = field(default_factory=list)  # parts admitted by this look
    refused: dict[str, str] = field(default_factory=dict)  # file name -> why, first seen by this look


class Intake:
    """Admits a landing folder's files into `admitted` (under the stream's checkpoint) for Spark to read."""

    def __init__(self, landing: Path, admitted: Path, settle_s: float) -> None:
        self.landing, self.admitted, self.settle_s = landing, admitted, settle_s
        admitted.mkdir(parents=True, exist_ok=True)
        remove_temp_files(admitted)  # a part a killed driver was writing: never renamed, never read
        self.taken: dict[str, int] = {}  # landing name -> bytes admitted
        self.sequence, self.last_ns = 0, 0
        for part in sorted(admitted.iterdir()):
            found = _PART.match(part.name)
            if found is None:
                continue
            stat = part.stat()
            name = found.group(2)
            self.taken[name] = self.taken.get(name, 0) + stat.st_size
            self.sequence = max(self.sequence, int(found.group(1)) + 1)
            self.last_ns = max(self.last_ns, stat.st_mtime_ns)
        self.refused: dict[str, str] = {}

    def look(self, drain: bool = False) -> Look:
        """Admit every landed byte that is ready; `drain` (a run that takes what has landed, then stops) takes
        a last line with no newline without waiting for it to age."""
        found = Look()
        now_ns = time.time_ns()
        settle_ns = int(self.settle_s * 1e9)
        for mtime_ns, name, size in self._landed():
            if not is_event_file(name):
                self._refuse(found, name, f"not an event file ({', '.join(EVENT_SUFFIXES)}, optionally {GZIP})")
                continue
            done = self.taken.get(name, 0)
            if size == done:
                continue
            if done and (name.endswith(GZIP) or size < done):
                what = "changed" if name.endswith(GZIP) else f"shrank from {done:,} to {size:,} bytes"
                self._refuse(found, name, f"{what} after it was taken: land a new file instead")
                continue
            quiet_ns = now_ns - mtime_ns
            if quiet_ns < settle_ns:
                continue
            part = self._admit(name, done, size, drain or quiet_ns >= settle_ns * TAIL_QUIET_FACTOR, found)
            if part is not None:
                found.admitted.append(part)
        return found

    def pending(self) -> int:
        """Landed event files with bytes not admitted yet (still being written, or a last line unfinished;
        refused files aside)."""
        return sum(is_event_file(name) and size != self.taken.get(name, 0) for _, name, size in self._landed())

    def _landed(self) -> list[tuple[int, str, int]]:
        """(modification time, name, size) of each file landed under a visible name and not refused, oldest
        first, then by name."""
        files = []
        for entry in os.scandir(self.landing):
            if entry.name[:1] in "._" or entry.name in self.refused:
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:  # removed since the listing
                continue
            if entry.is_file():
                files.append((stat.st_mtime_ns, entry.name, stat.st_size))
        return sorted(files)

    def _admit(self, name: str, start: int, size: int, whole: bool, found: Look) -> Path | None:
        source = self.landing / name
        if name.endswith(GZIP):
            data = source.read_bytes()
            if why := _gzip_problem(data):
                self._refuse(found, name, why)
                return None
        else:
            with source.open("rb") as fh:
                fh.seek(start)
                data = fh.read(size - start)
            if not whole:
                data = data[: data.rfind(b"\n") + 1]
        if not data:
            return None
        target = self.admitted / f"{self.sequence:08d}-{name}"
        with atomic_file(target) as tmp:
            tmp.write_bytes(data)
            self.last_ns = later_than(tmp, self.last_ns)
        self.sequence += 1
        self.taken[name] = size if name.endswith(GZIP) else start + len(data)
        return target

    def _refuse(self, found: Look, name: str, why: str) -> None:
        self.refused[name] = why
        found.refused[name] = why


def _gzip_problem(data: bytes) -> str | None:
    """Why `data` does not decompress whole, or None (read a chunk at a time: never all of it decompressed)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
            while fh.read(_CHUNK):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        return f"not a whole gzip file ({exc})"
    return None


def wait_for_landed(intake: Intake, on_look: Callable[[Look], None] = lambda look: None) -> None:
    """Admit everything landed so far, waiting for files still being written to settle (`--available-now`)."""
    while True:
        on_look(intake.look(drain=True))
        if not intake.pending():
            return
        time.sleep(intake.settle_s / 2)
