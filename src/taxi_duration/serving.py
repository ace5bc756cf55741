"""The model a server holds: loaded from the registry, checked before use, swapped without downtime.

`Served` is one loaded model version: its bundle (the native export, no JVM), the fast feature path and the
interval. `ModelHolder` owns the current one. A reload (a poll of the registry, or an admin call) loads the
version the alias now names beside the current one, checks it on canary trips, and only then swaps the
reference; a model that fails to load or to check is reported and never replaces the one being served.
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

from taxi_duration import schema as s
from taxi_duration import tracking
from taxi_duration.config import DEFAULT_MODEL, Settings
from taxi_duration.errors import UsageError
from taxi_duration.model import Bundle

log = logging.getLogger("taxi_duration.serving")
BUNDLE_PATH = Path("artifacts") / "bundle"  # where MLflow puts the pyfunc's `bundle` artifact
# A checked model answers every canary with a finite duration no longer than this.
CANARY_MAX_MINUTES = 24 * 60.0


@dataclass
class Served:
    """One loaded model version, ready to predict."""

    version: str
    uri: str
    bundle: Bundle
    folder: Path
    loaded_at: str = field(default_factory=lambda: datetime.now().astimezone().isoformat(timespec="seconds"))

    @property
    def needs_distance(self) -> bool:
        """Whether the model's features include the metered distance."""
        return s.DISTANCE in self.bundle.required_inputs

    def predict(self, trips: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Minutes, p10 and p90 for canonical trips (one or many)."""
        return self._predict(self.bundle.fast.many(trips))

    def predict_remembered(self, trips: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, ...] | None:
        """What `predict` answers, if the fast path remembers every trip's features (microseconds a trip);
        else None, and the caller decides where the evaluation should run."""
        rows = self.bundle.fast.recall(trips)
        return None if rows is None else self._predict(rows)

    def _predict(self, rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        interval = self.bundle.interval
        if len(rows) == 1:
            minutes = self.bundle.native.predict_one(rows[0])
            low, high = interval.bounds_one(minutes) if interval else (minutes, minutes)
            return np.array([minutes]), np.array([low]), np.array([high])
        batch = self.bundle.predict_features(rows)
        return (batch, *self.bundle.bounds(batch))

    def describe(self) -> dict[str, Any]:
        """What `GET /model` shows."""
        meta = self.bundle.meta
        return {
            "name": meta.name,
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


def resolve(settings: Settings, uri: str) -> tuple[str, str]:
    """(version, a URI pinned to that version) for a `models:/name@alias`, `models:/name/N` or other URI."""
    store = tracking.connect(settings)
    if uri.startswith("models:/") and "@" in uri:
        name, alias = uri.removeprefix("models:/").split("@", 1)
        try:
            version = store.client.get_model_version_by_alias(name, alias).version
        except mlflow.exceptions.MlflowException as exc:
            raise UsageError(
                f"no version of {name!r} has the alias {alias!r} in {store.tracking_uri}: train one first "
                "(`taxi-duration run`), or pass --model"
            ) from exc
        return str(version), f"models:/{name}/{version}"
    if uri.startswith("models:/"):
        return uri.rsplit("/", 1)[-1], uri
    return uri, uri


def load(settings: Settings, uri: str, work: Path) -> Served:
    """Download and open the model behind `uri` (into a new folder under `work`) and check it."""
    version, pinned = resolve(settings, uri)
    folder = Path(tempfile.mkdtemp(prefix=f"v{version}-", dir=work))
    try:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=pinned, dst_path=str(folder)))
        except Exception as exc:  # MLflow raises several types for a URI that leads nowhere
            raise UsageError(f"cannot download model {pinned!r}: {str(exc).splitlines()[0]}") from exc
        bundle = Bundle.open(local / BUNDLE_PATH if (local / BUNDLE_PATH).is_dir() else local)
        served = Served(version, pinned, bundle, folder)
        check(served)
        return served
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def canaries(needs_distance: bool) -> list[dict[str, Any]]:
    """Trips every good model answers sensibly: short and long, airport and unknown zones, now and at night."""
    now = datetime.now().replace(microsecond=0)
    trips = [
        (now, 74, 75, 1, 1.2),
        (now.replace(hour=3), 132, 230, 2, 17.5),
        (now + timedelta(days=1), 264, 265, None, 3.0),
        (now, 1, 1, 6, 0.5),
    ]
    return [
        {
            s.PICKUP: pickup,
            s.PU_ZONE: pu,
            s.DO_ZONE: do,
            s.PASSENGERS: passengers,
            s.DISTANCE: distance if needs_distance else None,
            s.VENDOR: 2,
        }
        for pickup, pu, do, passengers, distance in trips
    ]


def check(served: Served) -> None:
    """Refuse a model whose predictions on the canary trips are not finite durations of at most a day, or
    whose one-trip and batch answers disagree."""
    trips = canaries(served.needs_distance)
    batch, _, _ = served.predict(trips)
    single = np.array([served.predict([t])[0][0] for t in trips])
    if not np.all(np.isfinite(batch)) or np.any(batch < 0) or np.any(batch > CANARY_MAX_MINUTES):
        raise UsageError(f"model {served.uri} failed its check: canary predictions {batch.round(2).tolist()}")
    if not np.allclose(single, batch, rtol=0, atol=1e-6):
        raise UsageError(f"model {served.uri} failed its check: one-trip and batch predictions differ")
    log.info("model %s checked: canary predictions %s", served.uri, batch.round(1).tolist())


@dataclass
class ReloadStatus:
    """What the last reload attempt did."""

    checked_at: str | None = None
    outcome: str = "never"  # "loaded", "unchanged", "failed"
    error: str | None = None
    refused: str | None = None  # the version that failed, when it was found


class ModelHolder:
    """The served model and the reloads that replace it."""

    def __init__(self, settings: Settings, uri: str = DEFAULT_MODEL) -> None:
        self.settings = settings
        self.uri = uri
        # The process's own scratch folder: removed when it exits, swept by the next run if it was killed.
        self.work = Path(tempfile.mkdtemp(prefix="serving-", dir=settings.scratch_dir()))
        self.current: Served | None = None
        self.status = ReloadStatus()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.on_reload: Callable[[ReloadStatus], None] = lambda status: None

    def start(self) -> Served:
        """Load the model the URI names now; a failure here is fatal (there is nothing to serve)."""
        self.current = load(self.settings, self.uri, self.work)
        self.status = ReloadStatus(_now(), "loaded")
        _freeze()
        return self.current

    def reload(self) -> ReloadStatus:
        """Load the version the URI names now, if it is new, and swap it in once checked."""
        status = self._reload()
        self.on_reload(status)
        return status

    def _reload(self) -> ReloadStatus:
        with self._lock:
            version = None
            try:
                version, _ = resolve(self.settings, self.uri)
                if self.current is not None and version == self.current.version:
                    self.status = ReloadStatus(_now(), "unchanged")
                    return self.status
                fresh = load(self.settings, self.uri, self.work)
            except Exception as exc:
                log.warning("reload of %s failed, still serving version %s: %s", self.uri, self._version(), exc)
                self.status = ReloadStatus(_now(), "failed", str(exc), version)
                return self.status
            old, self.current = self.current, fresh
            self.status = ReloadStatus(_now(), "loaded")
            if old is not None:
                shutil.rmtree(old.folder, ignore_errors=True)
            _freeze()
            log.warning("now serving %s (was version %s)", fresh.uri, old.version if old else None)
            return self.status

    def _version(self) -> str | None:
        return self.current.version if self.current else None

    def poll(self, every_s: float) -> None:
        """Reload in a background thread every `every_s` seconds (0: never)."""
        if every_s <= 0:
            return

        def loop() -> None:
            while not self._stop.wait(every_s):
                self.reload()

        self._poller = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._poller.start()

    def close(self) -> None:
        """Stop polling and remove the downloaded models (again is harmless)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=30)
        shutil.rmtree(self.work, ignore_errors=True)


def _freeze() -> None:
    """Take everything alive now (the model and the fast path's hundreds of thousands of remembered values)
    out of the garbage collector's full passes: one pass over them holds the GIL for half a second, and
    every request waits. A replaced model is still freed by reference counting; only reference cycles in
    it, if any, stay."""
    gc.freeze()


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def wait_ready(
    url: str, timeout_s: float = 60.0, path: str = "/ready", alive: Callable[[], bool] = lambda: True
) -> None:
    """Block until `GET {url}{path}` answers 200 (for scripts, benchmarks and tests).

    Raises TimeoutError after `timeout_s`, or as soon as `alive()` says the server's process has ended.
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not alive():
            raise TimeoutError(f"{url}: the server exited before it was ready")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} was not ready after {timeout_s:.0f} s")
        time.sleep(0.1)
