"""Model-ready data for a time-honest split: validated, featurized, joined to a feature store built on the
training window only.

Every month is validated by the same job as `taxi-duration validate`, so the rows a model sees are the
clean rows a user can inspect, and the store is built from the training months' clean rows alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import narwhals as nw
import pandas as pd

from taxi_duration import feature_store as fs
from taxi_duration import schema as s
from taxi_duration.engines import Runtime
from taxi_duration.errors import UsageError
from taxi_duration.features import featurize
from taxi_duration.inputs import InputFile
from taxi_duration.months import Month
from taxi_duration.quality import CLEAN_DIR, QualityReport, validate
from taxi_duration.splits import TimeSplit
from taxi_duration.validation import REPAIRS_COL

ROLES = ("train", "validate", "test")


@dataclass(frozen=True)
class Prepared:
    """The three parts of a split as pandas frames of features, store features and target."""

    split: TimeSplit
    store: fs.FeatureStore
    frames: dict[str, pd.DataFrame]
    quality: dict[str, QualityReport]


def prepare(runtime: Runtime, files: list[InputFile], split: TimeSplit, workdir: Path) -> Prepared:
    """Validate the files of each role, build the store on the training clean rows, attach it to all."""
    by_role = _files_by_role(files, split)
    quality, featurized = {}, {}
    for role in ROLES:
        quality[role] = validate(runtime, by_role[role], workdir / "validated" / role, overwrite=True)
        clean = runtime.scan_parquet(workdir / "validated" / role / CLEAN_DIR).drop(s.REASONS, REPAIRS_COL)
        featurized[role] = featurize(runtime, clean, keep=(s.PICKUP,))
    store = fs.build(runtime, featurized["train"], split.train[0], split.train[-1], workdir / "feature_store")
    tables = store.tables(runtime)
    frames = {role: _to_pandas(fs.attach(featurized[role], store, tables)) for role in ROLES}
    return Prepared(split, store, frames, quality)


def _files_by_role(files: list[InputFile], split: TimeSplit) -> dict[str, list[InputFile]]:
    by_role: dict[str, list[InputFile]] = {role: [] for role in ROLES}
    for f in files:
        if f.month is None:
            raise UsageError(f"{f.path}: no month in the file name, so it cannot be placed in {split}")
        role = split.role(Month.from_yyyymm(f.month))
        if role is not None:
            by_role[role].append(f)
    for role, found in by_role.items():
        if not found:
            raise UsageError(f"no input file for the {role} part of the split ({split})")
    return by_role


def _to_pandas(frame: nw.LazyFrame[Any]) -> pd.DataFrame:
    return frame.sort(s.PICKUP).collect().to_pandas()
