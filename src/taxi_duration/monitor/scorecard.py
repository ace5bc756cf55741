"""Score a model version on any trip files, beside the baselines it carries: `taxi-duration evaluate`.

The files are validated by the same job as training, and the trips inside `TARGET_RANGE` are scored through
the scorer (`scorer.py`), the very road the API and `predict` take, so what is measured is what is served; a
model's numbers here match the ones logged when it was trained on the same month. A trip the scorer refuses
(a `with_distance` model and a trip with coordinates but no metered distance) is counted, not scored.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import narwhals as nw
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from taxi_duration.core.atomic import atomic_file
from taxi_duration.core.config import Settings
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import TARGET, add_target, in_target_range
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.ingest.quality import CLEAN_DIR, validate
from taxi_duration.ingest.readers import read_trips
from taxi_duration.monitor import legacy
from taxi_duration.serve.bundle import INPUT_COLUMNS
from taxi_duration.serve.scorer import Predictions, load
from taxi_duration.train import metrics as evaluate
from taxi_duration.train.model import baseline_columns, course_model

PREDICTED = "duration_minutes"  # the predicted minutes, named as the API and `predict` name them


def score_files(
    settings: Settings,
    model_uri: str,
    files: list[InputFile],
    legacy_train: list[InputFile] | None = None,
    predictions_path: Path | None = None,
) -> dict[str, Any]:
    """Validate `files`, predict every modeled trip, and score the model and its baselines.

    With `legacy_train`, the team's old model (`legacy.py`) is fitted on those trips as it was (its own
    filter, no validation) and scored on the very rows the model is. With `predictions_path`, every scored
    trip is written there (Parquet): its inputs, its actual minutes, the predicted minutes and interval.
    """
    scorer = load(settings, model_uri, settings.scratch_dir())
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
    predictions = scorer.score(raw)
    assert predictions is not None
    predicted = predictions.predicted
    refused = Counter(r for r in predictions.reasons if r is not None)
    features = predictions.feature_table().to_pandas()
    frame = features.assign(
        **{TARGET: raw[TARGET].to_numpy()[predicted], evaluate.MODEL: predictions.minutes[predicted]},
        **baseline_columns(features, course_model(scorer.bundle), scorer.bundle.meta.global_mean),
    )
    if predictions_path is not None:
        _write_predictions(predictions_path, raw[predicted], predictions)
    names = [evaluate.MODEL, *evaluate.BASELINES]
    if legacy_train:
        frame[legacy.NAME] = legacy.predict(old_model, raw[predicted])
        names.append(legacy.NAME)
    scores = evaluate.score(nw.from_native(frame, eager_only=True), names)
    return {
        "model": model_uri,
        "trained": {"feature_set": scorer.bundle.meta.feature_set, "train_months": scorer.bundle.meta.train_months},
        "data": {
            "files": [str(f.path) for f in files],
            "input_rows": report.input_rows,
            "clean_rows": report.clean_rows,
            "scored_rows": len(frame),
            "refused_rows": dict(refused),
            **({"legacy_train_files": [str(f.path) for f in legacy_train]} if legacy_train else {}),
        },
        "metrics": {name: scores[name]["overall"]["all"] for name in names},
        "breakdown": scores,
    }


def _write_predictions(path: Path, trips: pd.DataFrame, predictions: Predictions) -> None:
    ok = predictions.predicted
    table = pa.Table.from_pandas(trips.reset_index(drop=True), preserve_index=False).append_column(
        PREDICTED, pa.array(predictions.minutes[ok])
    )
    table = table.append_column("p10_minutes", pa.array(predictions.p10[ok]))
    table = table.append_column("p90_minutes", pa.array(predictions.p90[ok]))
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)
