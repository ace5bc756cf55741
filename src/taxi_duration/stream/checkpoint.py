"""The stream's checkpoint and its output, bound together: refused when they belong to another stream or are
damaged, read for what no batch has taken yet, and the home of a failed query's whole error.

The checkpoint's manifest names its landing folder, its output, its id and its sink (files or a table); the
output's names the checkpoint writing it, so a new checkpoint cannot score an old output's events again.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from taxi_duration.core.atomic import atomic_file
from taxi_duration.core.errors import BadInputError
from taxi_duration.stream.writers import FILES, PREDICTIONS, QUARANTINE

# In the checkpoint (its landing folder, output and id) and in the output (the id of the checkpoint writing it).
MANIFEST = "taxi-duration-stream.json"
ERROR_LOG = "stream-error.log"  # in the checkpoint: the whole text of the last failure
LAYOUT = 2  # a checkpoint of layout 1 had Spark read the landing folder itself: its logs name landed files
_SPARK_LOGS = ("offsets", "commits", "sources/0")  # Spark's text logs in a checkpoint, a file per batch
_LOG_VERSION = re.compile(r"^v\d+$")


def check_folders(input_dir: Path, output: Path, checkpoint: Path, sink: str = FILES) -> None:
    """Refuse, before anything is written: a landing folder that does not exist, a checkpoint another stream
    (or an older version) wrote or that is damaged, and an output another checkpoint wrote (a new checkpoint
    would score its events again and overwrite its batches). Then bind a new checkpoint and its output
    together: the checkpoint first, so a kill in between leaves an output that it can still claim. A checkpoint
    resumes only with the `sink` it started with: its batches' predictions would otherwise be split between two
    places, and a batch run again after a crash would land in the second."""
    if not input_dir.is_dir():
        raise BadInputError(input_dir, "landing folder does not exist (create it, or point --input at it)")
    owner = {"input": str(input_dir.resolve()), "output": str(output.resolve())}
    found = _manifest(checkpoint / MANIFEST)
    if found is not None:
        if {k: found.get(k) for k in owner} != owner:
            raise BadInputError(
                checkpoint,
                f"checkpoint of another stream (from {found.get('input')} to {found.get('output')}): "
                "give each stream its own --checkpoint",
            )
        if found.get("layout") != LAYOUT or not isinstance(found.get("id"), str):
            raise BadInputError(
                checkpoint,
                "checkpoint of an older taxi-duration stream, which read the landing folder itself: finish it with "
                "that version, or start a new --checkpoint with a new --output",
            )
        if found.get("sink", FILES) != sink:
            raise BadInputError(
                checkpoint,
                f"this stream writes its predictions to {found.get('sink', FILES)}, not {sink}: resume it as it "
                "started (with or without the same --to), or start a new --checkpoint and --output",
            )
        _check_spark_logs(checkpoint)
    elif checkpoint.is_dir() and any(checkpoint.iterdir()):
        raise BadInputError(checkpoint, f"not a taxi-duration stream checkpoint (no {MANIFEST}): pick an empty folder")
    stream_id = found["id"] if found is not None else None
    writer = _manifest(output / MANIFEST)
    if writer is not None and writer.get("id") != stream_id:
        raise BadInputError(
            output,
            f"written by another checkpoint ({writer.get('checkpoint')}): a new one would score its events again "
            "and overwrite its batches; resume with that checkpoint, or give a new --output",
        )
    if writer is None and any(any((output / name).glob("batch-*.parquet")) for name in (PREDICTIONS, QUARANTINE)):
        raise BadInputError(output, "holds batches of a stream that did not name its checkpoint: give a new --output")
    if stream_id is None:
        stream_id = uuid.uuid4().hex
        _write_manifest(checkpoint / MANIFEST, {**owner, "id": stream_id, "layout": LAYOUT, "sink": sink})
    if writer is None:
        _write_manifest(output / MANIFEST, {"id": stream_id, "checkpoint": str(checkpoint.resolve())})


def _manifest(path: Path) -> dict[str, Any] | None:
    """A manifest's fields, None when there is none; a damaged one is named."""
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text())
        if not isinstance(found, dict):
            raise ValueError("not a JSON object")
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInputError(path, f"damaged ({exc}): restore it, or start a new --checkpoint and --output") from None
    return found


def _write_manifest(path: Path, fields: dict[str, Any]) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(fields, indent=2) + "\n")


def _check_spark_logs(checkpoint: Path) -> None:
    """Name the first damaged file of Spark's logs in `checkpoint`: Spark's own error is a JVM stack trace."""
    for log in _SPARK_LOGS:
        folder = checkpoint / log
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                version, *entries = entry.read_text().splitlines()
                if not _LOG_VERSION.match(version):
                    raise ValueError(f"its first line is {version[:40]!r}, not a log version")
                for line in entries:
                    if line != "-":  # an offsets log writes `-` for a source with no offset yet
                        json.loads(line)
            except (UnicodeDecodeError, ValueError) as exc:
                raise BadInputError(
                    entry, f"a damaged file of the stream's checkpoint ({exc}): start a new --checkpoint and --output"
                ) from None


def untaken(admitted: Path, checkpoint: Path) -> int:
    """Admitted parts that no batch has taken yet: the admitted folder against the file source's log."""
    parts = {p.name for p in admitted.iterdir() if p.name[0] not in "._"} if admitted.is_dir() else set()
    taken: set[str] = set()
    for entry in (checkpoint / "sources" / "0").glob("*"):
        if entry.name.startswith("."):
            continue
        for line in entry.read_text(errors="replace").splitlines()[1:]:  # the first line is the log's version
            taken.add(json.loads(line).get("path", "").rpartition("/")[2])
    return len(parts - taken)


def failure(exc: BaseException, checkpoint: Path) -> str:
    """Why the query failed, in one line, its whole text written to `checkpoint/ERROR_LOG`."""
    text = str(exc).strip() or type(exc).__name__
    log = checkpoint / ERROR_LOG
    with atomic_file(log) as tmp:
        tmp.write_text(text + "\n")
    if "CANNOT_LOAD_STATE_STORE" in text:
        return (
            f"the dedup state in {checkpoint / 'state'} cannot be read (damaged): start a new --checkpoint with a "
            f"new --output (Spark's error in {log})"
        )
    causes = [line.removeprefix("Caused by: ") for line in text.splitlines() if line.startswith("Caused by: ")]
    return f"the stream stopped: {causes[-1] if causes else text.splitlines()[0]} (Spark's error in {log})"
