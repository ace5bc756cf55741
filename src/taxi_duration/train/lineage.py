"""Which data and which code a training run used: file fingerprints, the validation rows' key, the model's pins.

`fingerprint` is the run's `data.json`; `validation_key` names the validation rows for the champion rule (two
runs on the same rows compare their RMSEs as they are); `requirements` is what the logged model pins.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from typing import Any

from taxi_duration.core.storage import Location
from taxi_duration.features.definitions import TARGET_RANGE
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.ingest.quality import QualityReport


def file_digest(path: Location) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(files: dict[str, list[InputFile]], quality: dict[str, QualityReport], rows: dict[str, int]) -> dict:
    """Which data a run saw: every file (name, bytes, SHA-256, month), and rows read, clean and modeled."""
    return {
        role: {
            "files": [
                {"name": f.path.name, "bytes": f.path.stat().st_size, "sha256": file_digest(f.path), "month": f.month}
                for f in found
            ],
            "input_rows": quality[role].input_rows,
            "clean_rows": quality[role].clean_rows,
            "modeled_rows": rows[role],
        }
        for role, found in files.items()
    }


def validation_key(data: dict[str, Any]) -> str:
    """One id for the validation rows: the same files under the same target range give the same key."""
    part = data["validate"]
    identity = {"files": [f["sha256"] for f in part["files"]], "rows": part["modeled_rows"], "range": TARGET_RANGE}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def requirements() -> list[str]:
    """The model's pip requirements: this package's own runtime pins (no extras), read from its metadata."""
    needed = importlib.metadata.requires("taxi-duration-predictor") or []
    return [r.split(";")[0].strip() for r in needed if "extra ==" not in r]
