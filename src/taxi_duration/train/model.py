"""The training side of a bundle (`bundle.py`): the trainers' fitted models, written and read back.

`write` saves a bundle folder with the native export beside the trainer's own model and the course
baseline; `course_model` reads the baseline back for `evaluate` (a Spark bundle starts Spark). Serving never
imports this module: it reads the native export alone.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from taxi_duration.features.store import FeatureStore
from taxi_duration.serve.bundle import COURSE_DIR, META, MODEL_DIR, NATIVE_DIR, PAIR_MEDIAN, STORE_DIR, Bundle, Meta
from taxi_duration.serve.native import NativeModel
from taxi_duration.train.export import from_sklearn
from taxi_duration.train.metrics import BASELINES


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
            from taxi_duration.train import local as train_local

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
    from taxi_duration.train.spark import MllibPredictor

    return MllibPredictor.load(path)


LOADERS: dict[str, Callable[[Path], Predictor]] = {"sklearn": SklearnPredictor.load, "mllib": _load_mllib}


def course_model(bundle: Bundle) -> Predictor:
    """The course baseline fitted on the same rows as the bundle's model (a Spark bundle starts Spark)."""
    return LOADERS[bundle.meta.kind](bundle.path / COURSE_DIR)


def baseline_columns(features: pd.DataFrame, course: Predictor, global_mean: float) -> dict[str, Any]:
    """Each baseline's prediction for a frame of features, named as `evaluate.score` expects."""
    course_name, pair_name, mean_name = BASELINES
    return {course_name: course.predict(features), pair_name: features[PAIR_MEDIAN], mean_name: global_mean}


def write(path: Path, meta: Meta, store: FeatureStore, model: Predictor, course: Predictor) -> Path:
    """Write a bundle folder (which must not exist yet) and return it."""
    path.mkdir(parents=True)
    (path / META).write_text(json.dumps(asdict(meta), indent=2) + "\n")
    shutil.copytree(store.path, path / STORE_DIR)
    model.save(path / MODEL_DIR)
    model.native().save(path / NATIVE_DIR)
    course.save(path / COURSE_DIR)
    return path
