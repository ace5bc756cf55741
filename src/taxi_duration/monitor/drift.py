"""Drift between two windows of trips: `taxi-duration drift`.

Each window is validated as training validates (`quality.validate`, features included) into a scratch
folder, and its modeled trips (clean, inside `TARGET_RANGE`: the rows a model learns from and is judged on)
are compared with the reference window's:

- every categorical feature (zones, boroughs, hour, weekday) by its population stability index (PSI);
- every numeric one (distances, passengers, bearing) and the target (trip minutes) by the Kolmogorov-Smirnov
  statistic, the Wasserstein distance shown beside it;
- with a model, its predictions (KS) and its RMSE on the current window over the one it logged on validation.

Feature and target statistics are counts computed on the engine over every row (`group_by` on a value, or
on a numeric value's bin of `Measure.resolution`): only tables of a few thousand counts reach Python, so two
50M-row windows on DuckDB or Spark never pass through pandas. Predictions are made on a sample of each
window (`drift_sample_rows`), as scoring runs in Python. Every check has its statistic, its threshold (a
setting) and its verdict; any verdict of drift makes the command exit 3 (`errors.DriftDetectedError`).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from taxi_duration.core import schema as s
from taxi_duration.core.config import Settings
from taxi_duration.core.errors import BadInputError, DriftDetectedError
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import (
    BEARING,
    BY_NAME,
    DO_BOROUGH,
    GRID_MILES,
    PICKUP_HOUR,
    PICKUP_WEEKDAY,
    PU_BOROUGH,
    STRAIGHT_MILES,
    TARGET,
    TARGET_RANGE,
    in_target_range,
)
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.ingest.quality import CLEAN_DIR, validate
from taxi_duration.serve.bundle import INPUT_COLUMNS
from taxi_duration.train.metrics import metrics

PSI, KS, RMSE_RATIO = "psi", "ks", "rmse_ratio"
FEATURE, TARGET_KIND, PREDICTION, MODEL_ERROR = "feature", "target", "prediction", "model_error"
PREDICTED = "predicted_minutes"
# Added to every category's count before shares are taken, so a category one window lacks gives a finite PSI.
PSI_SMOOTHING = 0.5


@dataclass(frozen=True)
class Measure:
    """One compared column: by PSI over its values, or by KS over bins `resolution` wide (in its unit)."""

    column: str
    kind: str  # FEATURE, TARGET_KIND or PREDICTION
    resolution: float | None = None  # None: categorical, compared value by value

    @property
    def statistic(self) -> str:
        """The statistic its verdict reads."""
        return PSI if self.resolution is None else KS


# The features compared. Hour and weekday are numbers to the models but a few dozen values each: PSI over
# them says which hours gained trips. The pickup month and the holiday flag are left out: two windows differ
# in them by construction. The zone pair is left out too: tens of thousands of sparse pairs, whose drift the
# zones and borough pairs show.
CATEGORICAL = (PICKUP_HOUR, PICKUP_WEEKDAY, s.PU_ZONE, s.DO_ZONE, PU_BOROUGH, DO_BOROUGH)
NUMERIC_RESOLUTION = {s.DISTANCE: 0.05, STRAIGHT_MILES: 0.05, GRID_MILES: 0.05, s.PASSENGERS: 1.0, BEARING: 1.0}
MINUTES_RESOLUTION = 0.1  # 6 seconds, for the target and the predictions
MEASURES: tuple[Measure, ...] = (
    *(Measure(c, FEATURE) for c in CATEGORICAL),
    *(Measure(c, FEATURE, r) for c, r in NUMERIC_RESOLUTION.items()),
    Measure(TARGET, TARGET_KIND, MINUTES_RESOLUTION),
)
PREDICTION_MEASURE = Measure(PREDICTED, PREDICTION, MINUTES_RESOLUTION)
assert all(m.column in BY_NAME for m in MEASURES if m.kind == FEATURE), "a compared feature is not in FEATURES"

Counts = dict[Any, int]  # a value (categorical) or a bin number (numeric) -> rows


@dataclass
class Check:
    """One comparison and its verdict."""

    name: str  # "feature:pu_location_id", "target:duration_min", "prediction:predicted_minutes", "model_error:rmse"
    kind: str
    statistic_name: str
    statistic: float
    threshold: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        """Whether the statistic crosses its threshold."""
        return self.statistic > self.threshold

    def to_dict(self) -> dict[str, Any]:
        """As `summary.json` lists it."""
        return {**asdict(self), "verdict": "drift" if self.drifted else "ok"}


@dataclass
class Window:
    """What was read of one window."""

    files: list[str]
    input_rows: int
    clean_rows: int
    compared_rows: int  # clean and inside the target range
    counts: dict[str, Counts] = field(default_factory=dict)
    sample_rows: int = 0  # trips predicted, with a model
    rmse: float | None = None


@dataclass
class Result:
    """A drift run: both windows, every check, and the counts the report draws."""

    reference: Window
    current: Window
    checks: list[Check]
    engine: str
    model: dict[str, Any] | None
    thresholds: dict[str, float]
    elapsed_s: float
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def crossed(self) -> list[Check]:
        """The checks that cross their threshold."""
        return [c for c in self.checks if c.drifted]

    def summary(self) -> dict[str, Any]:
        """`summary.json`: every check with its statistic, threshold and verdict; the windows; the settings."""

        def window(w: Window) -> dict[str, Any]:
            return {k: v for k, v in asdict(w).items() if k != "counts"}

        return {
            "drift": bool(self.crossed),
            "crossed": [c.name for c in self.crossed],
            "checks": [c.to_dict() for c in self.checks],
            "reference": window(self.reference),
            "current": window(self.current),
            "model": self.model,
            "thresholds": self.thresholds,
            "engine": self.engine,
            "statistics": {
                PSI: f"population stability index over values, each count + {PSI_SMOOTHING} (categorical features)",
                KS: "Kolmogorov-Smirnov statistic over engine-side histograms, bin width in details.resolution",
                RMSE_RATIO: "the model's RMSE on the current window / the RMSE it logged on validation",
            },
            "rows_compared": f"clean trips of {TARGET_RANGE[0]:g}-{TARGET_RANGE[1]:g} minutes, every one "
            "for features and target; a sample of each window for predictions and model error",
            "elapsed_s": round(self.elapsed_s, 3),
            "created_at": self.created_at,
        }


def drift_error(result: Result) -> DriftDetectedError:
    """The exception that makes the command exit 3, naming the checks that crossed."""
    named = ", ".join(f"{c.name} ({c.statistic_name} {c.statistic:.3g} > {c.threshold:g})" for c in result.crossed)
    return DriftDetectedError(f"{len(result.crossed)} of {len(result.checks)} checks crossed their threshold: {named}")


# Statistics, from counts.


def psi(reference: Mapping[Any, int], current: Mapping[Any, int]) -> float:
    """Population stability index: sum over values of (current share - reference share) * ln(their ratio)."""
    values = set(reference) | set(current)
    n_ref = sum(reference.values()) + PSI_SMOOTHING * len(values)
    n_cur = sum(current.values()) + PSI_SMOOTHING * len(values)
    total = 0.0
    for v in values:
        r = (reference.get(v, 0) + PSI_SMOOTHING) / n_ref
        c = (current.get(v, 0) + PSI_SMOOTHING) / n_cur
        total += (c - r) * math.log(c / r)
    return total


def cdfs(reference: Mapping[int, int], current: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bins, reference CDF, current CDF) over the bins either window has, in order."""
    bins = np.array(sorted(set(reference) | set(current)), dtype=np.int64)
    ref = np.cumsum([reference.get(b, 0) for b in bins], dtype=np.float64)
    cur = np.cumsum([current.get(b, 0) for b in bins], dtype=np.float64)
    return bins, ref / ref[-1], cur / cur[-1]


def ks_wasserstein(reference: Mapping[int, int], current: Mapping[int, int], resolution: float) -> tuple[float, float]:
    """The Kolmogorov-Smirnov statistic and the Wasserstein distance (in the column's unit) of two histograms.

    Both are exact for values rounded down to their bin; the KS of the raw values can only be larger (by
    what happens inside a bin), the Wasserstein distance differs by at most `resolution`.
    """
    bins, ref, cur = cdfs(reference, current)
    gaps = np.abs(ref - cur)
    widths = np.diff(bins, append=bins[-1]) * resolution
    return float(gaps.max()), float((gaps * widths).sum())


def mean_of(counts: Mapping[int, int], resolution: float) -> float:
    """The mean of a histogram, each bin at its middle."""
    n = sum(counts.values())
    return sum((b + 0.5) * resolution * k for b, k in counts.items()) / n if n else float("nan")


# Counting on the engine.


def _bin(column: str, resolution: float) -> nw.Expr:
    return (nw.col(column) / resolution).floor().cast(nw.Int64())


def count_values(frame: nw.LazyFrame[Any], measure: Measure) -> Counts:
    """Rows by value (categorical) or by bin (numeric) of one column, counted where the frame lies."""
    key = nw.col(measure.column) if measure.resolution is None else _bin(measure.column, measure.resolution)
    counted = (
        frame.filter(~nw.col(measure.column).is_null())
        .select(key.alias("value"))
        .group_by("value")
        .agg(nw.len().alias("rows"))
        .collect()
    )
    return {_plain(v): int(n) for v, n in counted.iter_rows()}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def count_array(values: np.ndarray, resolution: float) -> Counts:
    """`count_values` for a numpy array (the predictions of a sample)."""
    bins, rows = np.unique(np.floor(values[~np.isnan(values)] / resolution).astype(np.int64), return_counts=True)
    return dict(zip(bins.tolist(), rows.tolist(), strict=True))


# The job.


Step = Callable[[str], None]


def compare(
    settings: Settings,
    reference: list[InputFile],
    current: list[InputFile],
    model_uri: str | None = None,
    on_step: Step = lambda step: None,
) -> Result:
    """Validate both windows, count, predict a sample with the model if given, and judge every check.

    Raises:
        BadInputError: a window has fewer than `drift_min_rows` clean trips inside the target range.
    """
    started = time.perf_counter()
    scorer = None
    if model_uri is not None:
        from taxi_duration.serve.scorer import load  # here: MLflow loads only when a model is asked for

        on_step(f"loading {model_uri}")
        scorer = load(settings, model_uri, settings.scratch_dir())
    runtime = Runtime.open(settings)
    try:
        with tempfile.TemporaryDirectory(dir=settings.scratch_dir()) as work:
            windows, samples = {}, {}
            for role, files in (("reference", reference), ("current", current)):
                on_step(f"validating the {role} window ({sum(f.rows for f in files):,} rows)")
                frame, windows[role] = _read_window(runtime, files, Path(work) / role, role, settings.drift_min_rows)
                on_step(f"counting the {role} window on {runtime.engine}")
                windows[role].counts = {m.column: count_values(frame, m) for m in MEASURES}
                if scorer is not None:
                    sample = runtime.sample(frame.select(*INPUT_COLUMNS, TARGET), settings.drift_sample_rows, seed=0)
                    samples[role] = sample.collect().to_pandas()
    finally:
        runtime.close()
    checks = [
        _check(m, windows["reference"].counts[m.column], windows["current"].counts[m.column], settings)
        for m in MEASURES
    ]
    model = None
    if scorer is not None:
        on_step(f"predicting {sum(len(x) for x in samples.values()):,} sampled trips")
        model, more = _model_checks(scorer, samples, windows, settings)
        checks += more
    ref, cur = windows["reference"], windows["current"]
    return Result(ref, cur, checks, str(settings.engine), model, thresholds(settings), time.perf_counter() - started)


def thresholds(settings: Settings) -> dict[str, float]:
    """Each statistic's threshold, from the settings."""
    return {
        PSI: settings.drift_psi_threshold,
        KS: settings.drift_ks_threshold,
        RMSE_RATIO: settings.drift_rmse_ratio_threshold,
    }


def _read_window(runtime: Runtime, files: list[InputFile], folder: Path, role: str, minimum: int) -> tuple[Any, Window]:
    report = validate(runtime, files, folder, features=True)
    trips = runtime.scan_parquet(folder / CLEAN_DIR).filter(in_target_range())
    compared = int(trips.select(nw.len()).collect().item())
    names = ", ".join(f.path.name for f in files)
    if compared < minimum:
        raise BadInputError(
            names,
            f"the {role} window is too small to judge: {compared:,} trips to compare ({report.input_rows:,} rows "
            f"read, {report.clean_rows:,} clean, {compared:,} of {TARGET_RANGE[0]:g}-{TARGET_RANGE[1]:g} minutes), "
            f"at least {minimum:,} needed (setting drift_min_rows)",
        )
    window = Window([str(f.path) for f in files], report.input_rows, report.clean_rows, compared)
    return trips, window


def _check(measure: Measure, reference: Counts, current: Counts, settings: Settings) -> Check:
    name, limits = f"{measure.kind}:{measure.column}", thresholds(settings)
    if measure.resolution is None:
        return Check(name, measure.kind, PSI, psi(reference, current), limits[PSI])
    ks, wasserstein = ks_wasserstein(reference, current, measure.resolution)
    details = {
        "wasserstein": wasserstein,
        "reference_mean": mean_of(reference, measure.resolution),
        "current_mean": mean_of(current, measure.resolution),
        "resolution": measure.resolution,
    }
    return Check(name, measure.kind, KS, ks, limits[KS], details)


def _model_checks(
    scorer: Any, samples: dict[str, pd.DataFrame], windows: dict[str, Window], settings: Settings
) -> tuple[dict[str, Any], list[Check]]:
    """Prediction drift over the samples, and the model's RMSE on the current one against its validation RMSE."""
    resolution = MINUTES_RESOLUTION
    for role, sample in samples.items():
        predictions = scorer.score(sample)
        ok = predictions.predicted
        minutes, actual = predictions.minutes[ok], sample[TARGET].to_numpy()[ok]
        windows[role].counts[PREDICTED] = count_array(minutes, resolution)
        windows[role].sample_rows = int(ok.sum())
        windows[role].rmse = metrics(actual, minutes)["rmse"]  # as the logged validation RMSE was computed
    reference, current = windows["reference"], windows["current"]
    prediction = _check(PREDICTION_MEASURE, reference.counts[PREDICTED], current.counts[PREDICTED], settings)
    logged = float(scorer.bundle.meta.validation["rmse"])
    assert current.rmse is not None
    error = Check(
        f"{MODEL_ERROR}:rmse",
        MODEL_ERROR,
        RMSE_RATIO,
        current.rmse / logged,
        thresholds(settings)[RMSE_RATIO],
        {"current_rmse": current.rmse, "reference_rmse": reference.rmse, "validation_rmse": logged},
    )
    meta = scorer.bundle.meta
    model = {
        "uri": scorer.uri,
        "version": scorer.version,
        "feature_set": meta.feature_set,
        "train_months": meta.train_months,
        "validate_month": meta.validate_month,
        "validation_rmse": logged,
        "sample_rows_setting": settings.drift_sample_rows,
    }
    return model, [prediction, error]
