"""The model as MLflow stores, registers and serves it: raw trips in, minutes out.

A trained model is a *bundle*, one folder holding everything a prediction needs, so that a model version
is self-contained and any process (the API, `evaluate`, `mlflow models serve`) rebuilds the same features:

    meta.json          what was trained: kind, feature set, training window, validation scores, interval
    feature_store/     the store version the model was trained against
    model/             the fitted predictor (a scikit-learn pipeline, or an MLlib PipelineModel)
    native/            the same model exported for serving without its trainer (`native.py`: no JVM)
    course_baseline/   the course baseline fitted on the same rows, for `evaluate` to score beside us

The bundle is logged as an MLflow pyfunc whose `predict` takes trips with canonical or TLC column names and
predicts with the native export, so no process that serves a model needs Spark.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import joblib
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema
from sklearn.pipeline import Pipeline

from taxi_duration import schema as s
from taxi_duration.errors import UsageError
from taxi_duration.evaluate import BASELINES, MODEL
from taxi_duration.export import from_sklearn
from taxi_duration.feature_store import FeatureStore
from taxi_duration.intervals import Interval
from taxi_duration.native import NativeModel
from taxi_duration.online import FastFeatures, features_table, trips_table

META, STORE_DIR, MODEL_DIR, COURSE_DIR = "meta.json", "feature_store", "model", "course_baseline"
NATIVE_DIR = "native"
# Up to this many trips, a prediction takes the online fast path (microseconds a trip); more take one batch
# evaluation (milliseconds of fixed cost, then far less per trip).
FAST_ROWS = 256
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


class Predictor(Protocol):
    """A fitted model over feature frames."""

    kind: str

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Minutes for each row of features."""
        ...

    def save(self, path: Path) -> None:
        """Write the fitted model to a new folder."""
        ...

    def native(self) -> NativeModel:
        """The model exported for serving without its trainer."""
        ...


@dataclass
class SklearnPredictor:
    """Anything with scikit-learn's `predict(frame)`, kept with joblib."""

    estimator: Any
    kind: str = "sklearn"

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Minutes for each row of features."""
        if isinstance(self.estimator, Pipeline):  # the LightGBM pipeline, whose trees predict faster in blocks
            from taxi_duration import train_local

            return train_local.raw_predict(self.estimator, features)
        return np.asarray(self.estimator.predict(features), dtype=float)

    def save(self, path: Path) -> None:
        """Write the estimator as one joblib file in a new folder."""
        path.mkdir(parents=True)
        joblib.dump(self.estimator, path / "estimator.joblib")

    def native(self) -> NativeModel:
        """The LightGBM pipeline as its booster behind the same encoding."""
        return from_sklearn(self.estimator)

    @classmethod
    def load(cls, path: Path) -> SklearnPredictor:
        """Read a folder written by `save`."""
        return cls(joblib.load(path / "estimator.joblib"))


def _load_mllib(path: Path) -> Predictor:
    from taxi_duration.train_spark import MllibPredictor

    return MllibPredictor.load(path)


LOADERS: dict[str, Callable[[Path], Predictor]] = {"sklearn": SklearnPredictor.load, "mllib": _load_mllib}


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
    """An opened bundle: features and predictions for raw trips.

    Serving touches only the store and the native export; the trainer's own model and the course baseline
    (which, for a Spark model, start a Spark session) are loaded when `evaluate` first asks for them. Each
    part is read on first use.
    """

    path: Path
    meta: Meta
    store: FeatureStore

    @classmethod
    def open(cls, path: Path) -> Bundle:
        """Open a bundle folder written by `write`."""
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
    def model(self) -> Predictor:
        """The trainer's own fitted model."""
        return LOADERS[self.meta.kind](self.path / MODEL_DIR)

    @cached_property
    def course(self) -> Predictor:
        """The course baseline fitted on the same rows."""
        return LOADERS[self.meta.kind](self.path / COURSE_DIR)

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

    def predict_trips(self, trips: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Minutes for canonical trips (dicts, as the API holds them), through the fast feature path."""
        return self.predict_features(self.fast.many(trips))

    def predict_features(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Minutes for the fast path's feature rows."""
        return self.native.predict({name: [r[name] for r in rows] for name in self.native.inputs})

    def bounds(self, minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p10, p90) for predicted minutes; the minutes themselves for a model trained without an interval."""
        return self.interval.bounds(minutes) if self.interval else (minutes, minutes)

    def features(self, trips: pd.DataFrame) -> pd.DataFrame:
        """Raw trips (canonical or TLC names) -> model inputs, in input order."""
        return features_table(self._canonical(trips), self.store).to_pandas()

    def predict(self, trips: pd.DataFrame) -> np.ndarray:
        """Predicted minutes for raw trips, never below zero, from the native export."""
        if len(trips) > FAST_ROWS:
            return self.native.predict(self.features(trips))
        return self.predict_trips(self._canonical(trips).to_pylist())

    @staticmethod
    def _canonical(trips: pd.DataFrame) -> Any:
        found = s.resolve_aliases(list(trips))
        missing = [str(c.name) for c in INPUT_SCHEMA.inputs if c.required and c.name not in found]
        if missing:
            raise UsageError(f"trips lack required column(s): {', '.join(missing)}")
        return trips_table(trips)


def scored_columns(features: pd.DataFrame, model: Predictor, course: Predictor, global_mean: float) -> dict[str, Any]:
    """Our prediction and each baseline's for a frame of features, named as `evaluate.score` expects."""
    course_name, pair_name, mean_name = BASELINES
    return {
        MODEL: np.clip(model.predict(features), 0.0, None),
        course_name: course.predict(features),
        pair_name: features[PAIR_MEDIAN],
        mean_name: global_mean,
    }


def write(path: Path, meta: Meta, store: FeatureStore, model: Predictor, course: Predictor) -> Path:
    """Write a bundle folder (which must not exist yet) and return it."""
    path.mkdir(parents=True)
    (path / META).write_text(json.dumps(asdict(meta), indent=2) + "\n")
    shutil.copytree(store.path, path / STORE_DIR)
    model.save(path / MODEL_DIR)
    model.native().save(path / NATIVE_DIR)
    course.save(path / COURSE_DIR)
    return path


class TripDurationModel(PythonModel):
    """The MLflow face of a bundle: `predict(trips) -> minutes`."""

    def load_context(self, context: Any) -> None:
        """Open the bundle MLflow unpacked."""
        self.bundle = Bundle.open(Path(context.artifacts["bundle"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        """Predicted minutes, one per trip."""
        return self.bundle.predict(model_input)
