"""A trained model as one folder: everything a prediction needs, so any process rebuilds the same features.

    meta.json          what was trained: kind, feature set, training window, validation scores, interval
    feature_store/     the store version the model was trained against
    native/            the model exported for serving without its trainer (`native.py`: no JVM)
    model/             the trainer's own fitted model (a scikit-learn pipeline, or an MLlib PipelineModel)
    course_baseline/   the course baseline fitted on the same rows, for `evaluate` to score beside us

Serving reads only the first three; `model.py` (the training side) writes the folder and reads the last two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from taxi_duration.core import schema as s
from taxi_duration.core.errors import UsageError
from taxi_duration.features.store import FeatureStore
from taxi_duration.serve.intervals import Interval
from taxi_duration.serve.native import NativeModel
from taxi_duration.serve.online import FastFeatures

META, STORE_DIR, MODEL_DIR, COURSE_DIR, NATIVE_DIR = "meta.json", "feature_store", "model", "course_baseline", "native"
PAIR_MEDIAN = "fs_pair_median_min"  # the store's zone-pair median: the zone-pair-median baseline

# What a caller sends: the trip as known at booking (distance when the model's feature set uses it).
INPUT_SCHEMA = Schema(
    [
        ColSpec("datetime", s.PICKUP),
        ColSpec("long", s.PU_ZONE),
        ColSpec("long", s.DO_ZONE),
        ColSpec("long", s.PASSENGERS, required=False),
        ColSpec("double", s.DISTANCE, required=False),
        ColSpec("long", s.VENDOR, required=False),
        *(ColSpec("double", c, required=False) for c in s.COORDINATES),
    ]
)
INPUT_COLUMNS: tuple[str, ...] = tuple(str(c.name) for c in INPUT_SCHEMA.inputs)
SIGNATURE = ModelSignature(inputs=INPUT_SCHEMA, outputs=Schema([ColSpec("double", "duration_minutes")]))


@dataclass
class Meta:
    """What a bundle holds, in words a person (and `GET /model`) can read."""

    name: str
    kind: str
    feature_set: str
    train_months: list[str]
    validate_month: str
    store_version: str
    target_range: tuple[float, float]
    global_mean: float
    params: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    interval: dict[str, Any] | None = None  # `intervals.Interval` fitted on the validation month


@dataclass
class Bundle:
    """An opened bundle: the store, the native export and the interval, each read on first use."""

    path: Path
    meta: Meta
    store: FeatureStore

    @classmethod
    def open(cls, path: Path) -> Bundle:
        """Open a bundle folder written by `model.write`."""
        if not (path / META).is_file():
            raise UsageError(f"{path}: not a taxi-duration model (no {META})")
        meta = Meta(**json.loads((path / META).read_text()))
        return cls(path, meta, FeatureStore.open(path / STORE_DIR))

    @cached_property
    def native(self) -> NativeModel:
        """The model exported for serving without its trainer."""
        if not (self.path / NATIVE_DIR).is_dir():  # a model trained before the export existed
            raise UsageError(f"{self.path}: this model predates the native export; train it again to serve it")
        return NativeModel.load(self.path / NATIVE_DIR)

    @cached_property
    def interval(self) -> Interval | None:
        """The p10-p90 interval, when the model was trained with one."""
        return Interval(**self.meta.interval) if self.meta.interval else None

    @cached_property
    def fast(self) -> FastFeatures:
        """The online feature path that answers a trip in microseconds (built on first use)."""
        return FastFeatures(self.store)

    @property
    def required_inputs(self) -> list[str]:
        """What a trip must carry for this model: the required inputs, and the distance if the model reads it."""
        required = [str(c.name) for c in INPUT_SCHEMA.inputs if c.required]
        return [*required, s.DISTANCE] if s.DISTANCE in self.native.inputs else required
