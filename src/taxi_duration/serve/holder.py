"""The models a server holds: loaded from the registry, checked before use, swapped without downtime.

A server (or a stream) serves the champions: the `with_distance` one and the `pretrip` one, whichever
exist (`config.CHAMPIONS`), or the one model a URI names. Each is a `scorer.Scorer` (the native export, no
JVM), loaded by the loader every caller uses. `Champions` holds them with the one rule that picks which
answers a trip; `ModelHolder` owns the current `Champions`. A reload (a poll of the registry, or an admin
call) loads each version an alias now names beside the current one, checks it on canary trips, and only
then swaps the reference; a model that fails to load or to check is reported and never replaces the one
being served.
"""

from __future__ import annotations

import gc
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from taxi_duration.core import schema as s
from taxi_duration.core.config import CHAMPION_MODELS, CHAMPIONS, MODEL_NAME, Settings
from taxi_duration.core.errors import MissingAliasError, UsageError
from taxi_duration.serve import scorer as scorer_io
from taxi_duration.serve.scorer import Scorer

log = logging.getLogger("taxi_duration.serve.holder")
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


class Champions:
    """The models served together, and the one rule that picks which answers a trip (the API and the stream
    both ask it): a trip that gives the metered distance goes to a model that reads it, one without to a
    model that does not. With models of one kind only, that model answers every trip, as a lone model always
    has (one that reads the distance refuses a trip without it). The rule is settled once, when the models
    load: a trip's choice is one dict lookup."""

    def __init__(self, models: Sequence[Scorer]) -> None:
        self.models = tuple(models)
        reads = [m for m in self.models if m.needs_distance]
        blind = [m for m in self.models if not m.needs_distance]
        self.by_distance: dict[bool, Scorer] = {True: (reads or blind)[0], False: (blind or reads)[0]}
        self.by_feature_set: dict[str, Scorer] = {}
        for m in self.models:
            self.by_feature_set.setdefault(m.feature_set, m)

    def pick(self, has_distance: bool) -> Scorer:
        """The model that answers a trip, by whether it gives the metered distance."""
        return self.by_distance[has_distance]

    def split(self, has_distance: Sequence[bool] | np.ndarray) -> list[tuple[Scorer, np.ndarray]]:
        """Trips grouped by the model `pick` gives each: (model, the trips' positions), every trip in one group."""
        has = np.asarray(has_distance, dtype=bool)
        if self.by_distance[True] is self.by_distance[False]:
            return [(self.by_distance[True], np.arange(len(has)))]
        groups = [(self.by_distance[True], np.flatnonzero(has)), (self.by_distance[False], np.flatnonzero(~has))]
        return [(model, rows) for model, rows in groups if len(rows)]

    @property
    def default(self) -> Scorer:
        """The model a trip with every input goes to: what `/model` and `/ready` name first."""
        return self.by_distance[True]

    def named(self) -> str:
        """The models in one line: `models:/taxi-duration/1 (lightgbm, with_distance, @champion), ...`."""
        labels = ([m.bundle.native.source, m.feature_set, *([f"@{m.alias}"] if m.alias else [])] for m in self.models)
        return ", ".join(f"{m.uri} ({', '.join(label)})" for m, label in zip(self.models, labels, strict=True))


def open_models(settings: Settings, uri: str | None, work: Path) -> dict[str, Scorer]:
    """Load and check the model `uri` names, or without one every champion that exists (at least one must),
    keyed by the URI each was asked by."""
    models: dict[str, Scorer] = {}
    try:
        for source in _sources(uri):
            try:
                models[source] = load(settings, source, work)
            except MissingAliasError:
                if uri is not None:
                    raise
    except BaseException:
        for model in models.values():
            model.discard()
        raise
    if not models:
        aliases = " or ".join(repr(alias) for alias in CHAMPIONS.values())
        raise MissingAliasError(
            f"no version of {MODEL_NAME!r} has the alias {aliases} in {settings.mlflow_tracking_uri}: train one "
            "first (`taxi-duration run`), or pass --model"
        )
    return models


def _sources(uri: str | None) -> tuple[str, ...]:
    """The URIs served: the one given, else the champions'."""
    return (uri,) if uri is not None else CHAMPION_MODELS


@dataclass
class ReloadStatus:
    """What the last reload attempt did."""

    checked_at: str | None = None
    outcome: str = "never"  # "loaded", "unchanged", "failed"
    error: str | None = None
    refused: str | None = None  # the version that failed, when it was found
    source: str | None = None  # the URI whose version failed


class ModelHolder:
    """The served models and the reloads that replace them."""

    def __init__(self, settings: Settings, uri: str | None = None) -> None:
        """Serve the model `uri` names, or, without one, the champions (`config.CHAMPION_MODELS`)."""
        self.settings = settings
        self.uri = uri
        self.sources = _sources(uri)
        # The process's own scratch folder: removed when it exits, swept by the next run if it was killed.
        self.work = Path(tempfile.mkdtemp(prefix="serving-", dir=settings.scratch_dir()))
        self.models: dict[str, Scorer] = {}  # by the URI each was asked by
        self.current: Champions | None = None
        self.status = ReloadStatus()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.on_reload: Callable[[ReloadStatus], None] = lambda status: None

    def start(self) -> Champions:
        """Load the models the URIs name now; a failure here is fatal (there is nothing to serve)."""
        self.models = open_models(self.settings, self.uri, self.work)
        self.current = Champions([self.models[s] for s in self.sources if s in self.models])
        self.status = ReloadStatus(_now(), "loaded")
        _freeze()
        return self.current

    def latest(self) -> Champions:
        """The models the URIs name now, reloaded if they moved: what a stream scores its next batch with."""
        self.reload()
        if self.current is None:
            raise UsageError("ModelHolder.latest before start")
        return self.current

    def reload(self) -> ReloadStatus:
        """Load each version the URIs name now, if it is new, and swap them in once checked."""
        status = self._reload()
        self.on_reload(status)
        return status

    def _reload(self) -> ReloadStatus:
        with self._lock:
            models = dict(self.models)
            replaced: list[Scorer | None] = []  # the models swapped out (None: a champion served for the first time)
            failed: ReloadStatus | None = None
            for source in self.sources:
                old, version = models.get(source), None
                try:
                    version, _ = scorer_io.resolve(self.settings, source)
                    if old is not None and version == old.version:
                        continue
                    models[source] = load(self.settings, source, self.work)
                except Exception as exc:
                    if isinstance(exc, MissingAliasError) and old is None and self.uri is None:
                        continue  # a champion not trained yet: nothing to serve for it
                    serving = self.version_of(source)
                    log.warning("reload of %s failed, still serving version %s: %s", source, serving, exc)
                    failed = ReloadStatus(_now(), "failed", str(exc), version, source)
                    continue
                replaced.append(old)
                log.warning("now serving %s (was version %s)", models[source].uri, old.version if old else None)
            if replaced:
                self.models = models
                self.current = Champions([models[s] for s in self.sources if s in models])
                for gone in replaced:
                    if gone is not None:
                        gone.discard()
                _freeze()
            self.status = failed or ReloadStatus(_now(), "loaded" if replaced else "unchanged")
            return self.status

    def version_of(self, source: str) -> str | None:
        """The version served for a URI, or None."""
        model = self.models.get(source)
        return model.version if model else None

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
