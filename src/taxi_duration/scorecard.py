"""Score a model version on any trip files, beside the baselines it carries: `taxi-duration evaluate`.

The files are validated by the same job as training, and the trips inside `TARGET_RANGE` are scored, so
a model's numbers here match the ones logged when it was trained on the same month.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import narwhals as nw

from taxi_duration import evaluate, legacy, tracking
from taxi_duration.config import Settings
from taxi_duration.engines import Runtime
from taxi_duration.errors import UsageError
from taxi_duration.features import TARGET, add_target, in_target_range
from taxi_duration.inputs import InputFile
from taxi_duration.model import INPUT_COLUMNS, Bundle, TripDurationModel, scored_columns
from taxi_duration.quality import CLEAN_DIR, validate
from taxi_duration.readers import read_trips


def load_bundle(settings: Settings, model_uri: str) -> Bundle:
    """Open the bundle behind a model URI (`models:/taxi-duration@champion`, `runs:/...`, a folder)."""
    tracking.connect(settings)
    try:
        loaded = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # MLflow raises several types for a URI that leads nowhere
        raise UsageError(f"cannot load model {model_uri!r}: {str(exc).splitlines()[0]}") from exc
    python_model = loaded.unwrap_python_model()
    if not isinstance(python_model, TripDurationModel):
        raise UsageError(f"{model_uri} is not a taxi-duration model")
    return python_model.bundle


def score_files(
    settings: Settings, model_uri: str, files: list[InputFile], legacy_train: list[InputFile] | None = None
) -> dict[str, Any]:
    """Validate `files`, predict every modeled trip, and score the model and its baselines.

    With `legacy_train`, the team's old model (`legacy.py`) is fitted on those trips as it was (its own
    filter, no validation) and scored on the very rows the model is.
    """
    bundle = load_bundle(settings, model_uri)
    runtime = Runtime.open(settings)
    try:
        if legacy_train:
            with runtime.reading(", ".join(f.path.name for f in legacy_train)):
                old_trips = read_trips(runtime, legacy_train).collect().to_pandas()
            old_model = legacy.fit(legacy.from_canonical(old_trips))
        with tempfile.TemporaryDirectory(dir=settings.scratch_dir()) as work:
            report = validate(runtime, files, Path(work) / "validated", overwrite=True)
            clean = runtime.scan_parquet(Path(work) / "validated" / CLEAN_DIR)
            trips = add_target(runtime, clean).filter(in_target_range()).select(*INPUT_COLUMNS, TARGET)
            raw = trips.collect().to_pandas()
    finally:
        runtime.close()
    features = bundle.features(raw)
    meta = bundle.meta
    frame = features.assign(
        **{TARGET: raw[TARGET].to_numpy()}, **scored_columns(features, bundle.model, bundle.course, meta.global_mean)
    )
    names = [evaluate.MODEL, *evaluate.BASELINES]
    if legacy_train:
        frame[legacy.NAME] = legacy.predict(old_model, raw)
        names.append(legacy.NAME)
    scores = evaluate.score(nw.from_native(frame, eager_only=True), names)
    return {
        "model": model_uri,
        "trained": {"feature_set": bundle.meta.feature_set, "train_months": bundle.meta.train_months},
        "data": {
            "files": [str(f.path) for f in files],
            "input_rows": report.input_rows,
            "clean_rows": report.clean_rows,
            "scored_rows": len(frame),
            **({"legacy_train_files": [str(f.path) for f in legacy_train]} if legacy_train else {}),
        },
        "metrics": {name: scores[name]["overall"]["all"] for name in names},
        "breakdown": scores,
    }
