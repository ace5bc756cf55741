"""The model a server holds: loaded from the registry, checked before use, swapped without downtime.

The server holds a `scorer.Scorer` (the native export, no JVM), loaded by the loader every caller uses.
`ModelHolder` owns the current one. A reload (a poll of the registry, or an admin call) loads the
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from taxi_duration import schema as s
from taxi_duration import scorer as scorer_io
from taxi_duration.config import DEFAULT_MODEL, Settings
from taxi_duration.errors import UsageError
from taxi_duration.scorer import Scorer

log = logging.getLogger("taxi_duration.serving")
# A checked model answers every canary with a finite duration no longer than this.
CANARY_MAX_MINUTES = 24 * 60.0


def load(settings: Settings, uri: str, work: Path) -> Scorer:
    """Load the model behind `uri` (into a new folder under `work`) and check it."""
    scorer = scorer_io.load(settings, uri, work)
    try:
        check(scorer)
    except BaseException:
        scorer.discard()
        raise
    return scorer


def canaries(needs_distance: bool) -> list[dict[str, Any]]:
    """Trips every good model answers sensibly: short and long, airports, now, tomorrow and at night."""
    now = datetime.now().replace(microsecond=0)
    trips = [
        (now, 74, 75, 1, 1.2),
        (now.replace(hour=3), 132, 230, 2, 17.5),
        (now + timedelta(days=1), 138, 1, None, 3.0),
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


def check(scorer: Scorer) -> None:
    """Refuse a model whose predictions on the canary trips are not finite durations of at most a day, or
    whose one-trip and batch answers disagree."""
    trips = canaries(scorer.needs_distance)
    batch = _minutes(scorer, trips)
    single = np.array([_minutes(scorer, [t])[0] for t in trips])
    if not np.all(np.isfinite(batch)) or np.any(batch < 0) or np.any(batch > CANARY_MAX_MINUTES):
        raise UsageError(f"model {scorer.uri} failed its check: canary predictions {batch.round(2).tolist()}")
    if not np.allclose(single, batch, rtol=0, atol=1e-6):
        raise UsageError(f"model {scorer.uri} failed its check: one-trip and batch predictions differ")
    log.info("model %s checked: canary predictions %s", scorer.uri, batch.round(1).tolist())


def _minutes(scorer: Scorer, trips: list[dict[str, Any]]) -> np.ndarray:
    predictions = scorer.score(trips)
    assert predictions is not None
    return predictions.minutes


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
        self.current: Scorer | None = None
        self.status = ReloadStatus()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.on_reload: Callable[[ReloadStatus], None] = lambda status: None

    def start(self) -> Scorer:
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
                version, _ = scorer_io.resolve(self.settings, self.uri)
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
                old.discard()
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
