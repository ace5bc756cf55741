"""The one road from a trip to a prediction, which the API, `predict`, `evaluate`, the MLflow pyfunc and the
stream all take: `load` opens a model version, `Scorer.score` runs one fixed sequence on a batch of trips:

    column aliases -> zones from coordinates -> the request rules -> features and store statistics
        -> the exported model -> the interval

A trip that breaks a request rule gets no prediction but its reasons; each caller decides what a refusal
is (a 422, a row counted as skipped, a quarantined event). Up to `FAST_ROWS` trips take the online fast
path (microseconds a trip); more take one batch evaluation of the same definitions (`online.py`), whose
answers a test holds equal. Nothing here imports a trainer, the evaluator or Spark.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any, TypeAlias

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
from mlflow.pyfunc import PythonModel

from taxi_duration.core import schema as s
from taxi_duration.core.config import Settings
from taxi_duration.core.errors import MissingAliasError, UsageError
from taxi_duration.features.definitions import PU_BOROUGH
from taxi_duration.geo.shapes import PACKAGED_SHAPES, ZoneIndex, fill_zones, load_index, shapes_path
from taxi_duration.ingest.validation import REQUEST_BOUNDS, request_problems, trip_problems
from taxi_duration.registry import tracking
from taxi_duration.serve.bundle import Bundle
from taxi_duration.serve.online import features_table, trips_table

# Up to this many trips, a prediction takes the online fast path (microseconds a trip); more take one batch
# evaluation (milliseconds of fixed cost, then far less per trip).
FAST_ROWS = 256
BUNDLE_PATH = Path("artifacts") / "bundle"  # where MLflow puts the pyfunc's `bundle` artifact
# The columns the zones step and the request rules read.
_CHECKED = tuple(
    dict.fromkeys((s.PICKUP, *s.ZONES, *s.COORDINATES, *(c for b in REQUEST_BOUNDS.values() for c in b.columns)))
)

Trips: TypeAlias = pa.Table | pd.DataFrame | Sequence[Mapping[str, Any]]


@dataclass
class Predictions:
    """What `Scorer.score` answers for a batch of trips, in their order."""

    minutes: np.ndarray  # NaN where a trip was refused
    p10: np.ndarray
    p90: np.ndarray
    version: str
    reasons: list[str | None]  # why each refused trip got no prediction (comma-joined rule codes); None if predicted
    features: list[dict[str, Any]] | pa.Table  # the features of the predicted trips, in order (drift reads them)
    zones: dict[str, np.ndarray]  # every trip's zone ids, as given or found from its point (NaN: none)

    @property
    def predicted(self) -> np.ndarray:
        """Which trips got a prediction."""
        return np.array([r is None for r in self.reasons], dtype=bool)

    def feature_table(self) -> pa.Table:
        """The features of the predicted trips as an Arrow table."""
        return self.features if isinstance(self.features, pa.Table) else pa.Table.from_pylist(self.features)


@dataclass
class Scorer:
    """One loaded model version and everything its predictions need."""

    bundle: Bundle
    version: str
    uri: str
    zones: ZoneIndex | None = None  # without it, a trip must give its zone ids
    folder: Path | None = None  # where `load` downloaded it, removed with `discard`
    alias: str | None = None  # the registry alias it was loaded through (`champion`...), if any
    loaded_at: str = field(default_factory=lambda: datetime.now().astimezone().isoformat(timespec="seconds"))

    @cached_property
    def required(self) -> list[str]:
        """What a trip must carry for this model: pickup, both zones, and the distance if the model reads it."""
        return self.bundle.required_inputs

    @property
    def feature_set(self) -> str:
        """The feature set the model was trained on (`with_distance`, `pretrip`)."""
        return self.bundle.meta.feature_set

    @property
    def needs_distance(self) -> bool:
        """Whether the model's features include the metered distance."""
        return s.DISTANCE in self.required

    def score(self, trips: Trips, remembered_only: bool = False) -> Predictions | None:
        """Minutes, p10 and p90 for every trip that passes the request rules; reasons for the others.

        `trips` is an Arrow table or a pandas frame (canonical or TLC column names), or canonical trips as
        dicts (what the API holds). With `remembered_only`, the answer comes only if the fast path remembers
        every trip's features (microseconds a trip), else None: the caller decides where an evaluation runs.
        """
        if isinstance(trips, pa.Table | pd.DataFrame):
            table = trips_table(trips)  # column aliases, types, New York time
            if table.num_rows > FAST_ROWS:
                return self._score_table(table)
            trips = table.to_pylist()
        rows = [dict(t) for t in trips]  # a copy: the zones step fills in ids
        self._fill_row_zones(rows)
        reasons = trip_problems(rows, self.required)
        ok = [i for i, r in enumerate(reasons) if r is None]
        picked = [rows[i] for i in ok]
        features = self.bundle.fast.recall(picked) if remembered_only else self.bundle.fast.many(picked)
        if features is None:
            return None
        zones = {zone: np.array([r.get(zone) for r in rows], dtype=np.float64) for zone in s.ZONES}
        return self._predictions(reasons, ok, self._predict_rows(features), features, zones)

    def _score_table(self, table: pa.Table) -> Predictions:
        """The batch road for many trips: the same steps over columns, features by one batch evaluation."""
        columns = {
            c: table.column(c).to_numpy(zero_copy_only=False).astype("datetime64[us]" if c == s.PICKUP else "f8")
            for c in _CHECKED
        }
        self._fill_zones(columns)
        reasons = request_problems(columns, self.required)
        ok = np.flatnonzero([r is None for r in reasons])
        picked = table.take(ok)
        for zone in s.ZONES:
            ids = pa.array(columns[zone][ok].astype(np.int64), picked.schema.field(zone).type)
            picked = picked.set_column(picked.schema.get_field_index(zone), zone, ids)
        features = features_table(picked, self.bundle.store)
        native = self.bundle.native
        minutes = native.predict({n: features.column(n).to_numpy(zero_copy_only=False) for n in native.inputs})
        zones = {zone: columns[zone] for zone in s.ZONES}
        return self._predictions(reasons, ok, minutes, features, zones)

    def _predictions(
        self,
        reasons: list[str | None],
        ok: Any,
        minutes: np.ndarray,
        features: list[dict[str, Any]] | pa.Table,
        zones: dict[str, np.ndarray],
    ) -> Predictions:
        low, high = self._bounds(minutes, features)
        if len(ok) == len(reasons):  # every trip predicted: the common case, no scatter
            return Predictions(minutes, low, high, self.version, reasons, features, zones)
        minutes_out, low_out, high_out = (np.full(len(reasons), np.nan) for _ in range(3))
        for full, part in zip((minutes_out, low_out, high_out), (minutes, low, high), strict=True):
            full[ok] = part
        return Predictions(minutes_out, low_out, high_out, self.version, reasons, features, zones)

    def _predict_rows(self, features: list[dict[str, Any]]) -> np.ndarray:
        native = self.bundle.native
        if len(features) == 1:
            return np.array([native.predict_one(features[0])])
        return native.predict({n: [f[n] for f in features] for n in native.inputs})

    def _bounds(self, minutes: np.ndarray, features: list[dict[str, Any]] | pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """The p10-p90 bounds, by each trip's pickup borough (an interval has its own bins for the busy ones)."""
        interval = self.bundle.interval
        if interval is None:
            return minutes, minutes
        if isinstance(features, pa.Table):
            boroughs = (
                features.column(PU_BOROUGH).to_numpy(zero_copy_only=False)
                if PU_BOROUGH in features.schema.names
                else None
            )
            return interval.bounds(minutes, boroughs)
        if len(minutes) == 1:  # a scalar search: a tenth of the array call's cost
            low, high = interval.bounds_one(float(minutes[0]), features[0].get(PU_BOROUGH))
            return np.array([low]), np.array([high])
        return interval.bounds(minutes, [f.get(PU_BOROUGH) for f in features])

    def _fill_row_zones(self, rows: list[dict[str, Any]]) -> None:
        """`_fill_zones` for trips as dicts: only the trips missing an id are looked at."""
        unzoned = [r for r in rows if r.get(s.PU_ZONE) is None or r.get(s.DO_ZONE) is None]
        if not unzoned or self.zones is None:
            return
        columns = {c: np.array([r.get(c) for r in unzoned], dtype=np.float64) for c in (*s.ZONES, *s.COORDINATES)}
        self._fill_zones(columns)
        for zone in s.ZONES:
            for row, found in zip(unzoned, columns[zone].tolist(), strict=True):
                if row.get(zone) is None and found == found:
                    row[zone] = int(found)

    def _fill_zones(self, columns: dict[str, np.ndarray]) -> None:
        """Zone ids from the points of the trips that give coordinates but no ids (the Kaggle trips)."""
        if self.zones is None:
            return
        missing = {zone: np.isnan(columns[zone]) for zone in s.ZONES}
        if not any(m.any() for m in missing.values()):
            return
        points = {zone: (columns[lon], columns[lat]) for zone, (lon, lat) in s.ZONE_POINTS.items()}
        for zone, ids in fill_zones(self.zones, points, columns).items():
            lon, lat = s.ZONE_POINTS[zone]
            no_point = np.isnan(columns[lon]) | np.isnan(columns[lat])
            columns[zone] = np.where(missing[zone] & no_point, np.nan, ids)  # no zone, no point: "no zone"

    def describe(self) -> dict[str, Any]:
        """What `GET /model` shows."""
        meta = self.bundle.meta
        return {
            "name": meta.name,
            "alias": self.alias,
            "version": self.version,
            "uri": self.uri,
            "model": meta.params.get("model", meta.kind),
            "trained_with": meta.kind,
            "served_by": f"native ({self.bundle.native.source})",
            "feature_set": meta.feature_set,
            "inputs": self.bundle.native.inputs,
            "train_months": meta.train_months,
            "validate_month": meta.validate_month,
            "feature_store_version": meta.store_version,
            "target_range_minutes": list(meta.target_range),
            "validation_metrics": meta.validation,
            "interval": "p10-p90" if meta.interval else None,
            "loaded_at": self.loaded_at,
        }

    def discard(self) -> None:
        """Remove the downloaded copy (again is harmless)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def aliased(uri: str) -> tuple[str, str] | None:
    """(model name, alias) of a `models:/name@alias` URI, else None."""
    if uri.startswith("models:/") and "@" in uri:
        name, alias = uri.removeprefix("models:/").split("@", 1)
        return name, alias
    return None


def resolve(settings: Settings, uri: str) -> tuple[str, str]:
    """(version, a URI pinned to that version) for a `models:/name@alias`, `models:/name/N` or other URI."""
    if named := aliased(uri):
        name, alias = named
        try:
            version = tracking.client(settings).get_model_version_by_alias(name, alias).version
        except mlflow.exceptions.MlflowException as exc:
            raise MissingAliasError(
                f"no version of {name!r} has the alias {alias!r} in {settings.mlflow_tracking_uri}: train one "
                "first (`taxi-duration run`), or pass --model"
            ) from exc
        return str(version), f"models:/{name}/{version}"
    if uri.startswith("models:/"):
        return uri.rsplit("/", 1)[-1], uri
    return uri, uri


def load(settings: Settings, uri: str, work: Path) -> Scorer:
    """Download the model behind `uri` (a registry alias or version, `runs:/...`, a folder) into a new folder
    under `work` and open it: the one loader every caller uses."""
    version, pinned = resolve(settings, uri)
    folder = Path(tempfile.mkdtemp(prefix=f"v{version.replace('/', '_')[-40:]}-", dir=work))
    try:
        store = tracking.store_uri(settings)
        try:
            source = pinned
            if "://" not in pinned and ":/" not in pinned and not Path(pinned).exists():
                # MLflow's own error for a missing folder ends with an empty list of failures.
                raise UsageError(f"cannot load model {pinned!r}: no such folder (nor a models:/ or runs:/ URI)")
            if pinned.startswith("models:/"):  # MLflow would resolve it through its global registry URI
                name, number = pinned.removeprefix("models:/").rsplit("/", 1)
                source = tracking.client(settings).get_model_version_download_uri(name, number)
            local = Path(
                mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(folder), tracking_uri=store)
            )
        except UsageError:
            raise
        except Exception as exc:  # MLflow raises several types for a URI that leads nowhere
            raise UsageError(f"cannot load model {pinned!r}: {str(exc).splitlines()[0]}") from exc
        bundle = Bundle.open(local / BUNDLE_PATH if (local / BUNDLE_PATH).is_dir() else local)
        named = aliased(uri)
        return Scorer(bundle, version, pinned, zones_of(settings), folder, named[1] if named else None)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def zones_of(settings: Settings) -> ZoneIndex | None:
    """The zone index of the configured shapes, or None when the file is not there."""
    shapes = shapes_path(settings.zone_shapes)
    return load_index(shapes) if shapes.is_file() else None


class TripDurationModel(PythonModel):
    """The MLflow face of a bundle (`pyfunc_entry.py`): `predict(trips) -> minutes`, down the same road."""

    def load_context(self, context: Any) -> None:
        """Open the bundle MLflow unpacked."""
        bundle = Bundle.open(Path(context.artifacts["bundle"]))
        self.scorer = Scorer(bundle, version=bundle.meta.name, uri=str(bundle.path), zones=load_index(PACKAGED_SHAPES))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        """Predicted minutes, one per trip; a trip the scorer refuses fails the call, naming why."""
        predictions = self.scorer.score(model_input)
        assert predictions is not None
        refused = [(i, r) for i, r in enumerate(predictions.reasons) if r is not None]
        if refused:
            shown = "; ".join(f"row {i}: {r}" for i, r in refused[:5])
            raise UsageError(f"{len(refused):,} of {len(model_input):,} trips cannot be predicted ({shown})")
        return predictions.minutes
