"""MLflow: where runs, models and the champion live, and the rule that moves the champion.

The embedded default needs no server: a SQLite tracking store and an artifact folder under the data dir.
Any tracking URI the user sets (a real `mlflow server`, Databricks) is used as is.

The champion rule (`champion.decide`): each feature set has its own champion alias (`champion` for
`with_distance`, `champion-pretrip` for `pretrip`: `config.CHAMPIONS`). A new version takes its feature set's
alias only when it beats that alias's current champion on the same validation data; a tie (the same job run
again) leaves the alias where it is. Here the champion's RMSE is found for it: from its tags when it was judged
on this data, else by scoring it again on this data. A training process that
dies leaves its run RUNNING; the next training marks such runs FAILED and deletes any version they
registered that never got a decision, so the registry never shows a half-registered model.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from taxi_duration.core.config import CHAMPION, CHAMPIONS, MODEL_NAME, FeatureSet, Settings
from taxi_duration.registry.champion import Standing, decide

# Tags this project writes, in one namespace.
PID_TAG, HOST_TAG = "taxi_duration.pid", "taxi_duration.host"
OUTCOME_TAG = "taxi_duration.outcome"
DECISION_TAG, VALIDATION_TAG, RMSE_TAG = "taxi_duration.decision", "taxi_duration.validation", "taxi_duration.rmse"
PENDING = "pending"
# Fault injection for the crash-recovery tests: SIGKILL this process when the named point is reached.
CRASH_ENV = "TAXI_DURATION_CRASH_AT"


def crash_point(name: str) -> None:
    """Die here, as a power cut would, if `TAXI_DURATION_CRASH_AT` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Store:
    """An MLflow tracking store and registry, connected."""

    client: MlflowClient
    tracking_uri: str
    experiment_id: str

    @property
    def ui_command(self) -> str:
        """The command that opens this store in the MLflow UI, as it can be pasted into any shell: MLflow is
        named by its path beside this Python (the project's virtualenv), which need not be on the PATH."""
        if self.tracking_uri.startswith(("http://", "https://", "databricks")):
            return f"open {self.tracking_uri}"
        installed = Path(sys.executable).with_name("mlflow")
        program = shlex.quote(str(installed)) if installed.is_file() else "mlflow"
        return f"{program} ui --backend-store-uri {shlex.quote(self.tracking_uri)}"


def store_uri(settings: Settings) -> str:
    """The configured tracking (and registry) URI; the folder of an embedded SQLite store is created."""
    # MLflow logs its routine steps (creating a store's tables...) at INFO on stderr; a command's output
    # should be its own.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    uri = str(settings.mlflow_tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def client(settings: Settings) -> MlflowClient:
    """A client of the configured store and registry that sets no global MLflow setting (only quiets its logger):
    what a process that only reads models (a server polling the registry, the dashboard) uses.

    Raises:
        MlflowException: the embedded store does not exist (a reader never creates an empty one).
    """
    uri = str(settings.mlflow_tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise MlflowException(f"no MLflow store at {uri}")
    uri = store_uri(settings)
    return MlflowClient(uri, uri)


def connect(settings: Settings) -> Store:
    """Point MLflow at the configured store, creating the embedded one and the experiment when missing."""
    uri = store_uri(settings)
    artifacts: str | None = None
    if uri.startswith("sqlite:///"):
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(settings.mlflow_experiment, artifact_location=artifacts)
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    return Store(client, uri, experiment_id)


def run_tags(extra: dict[str, str]) -> dict[str, str]:
    """Tags every training run carries: who runs it (to recover from a crash) and the code it ran."""
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), **extra}
    commit = _git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(store: Store) -> list[str]:
    """Close runs whose process died on this host, and delete the undecided versions they registered.

    Returns what was repaired, one line each.
    """
    repaired: list[str] = []
    host = socket.gethostname()
    running = store.client.search_runs([store.experiment_id], "attributes.status = 'RUNNING'")
    for run in running:
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit() or _alive(int(tags[PID_TAG])):
            continue
        store.client.set_tag(run.info.run_id, OUTCOME_TAG, "killed: its process died before the run ended")
        store.client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
        repaired.append(f"run {run.info.run_id} was left running by a dead process: marked FAILED")
    champions = {champion_version(store, alias) for alias in CHAMPIONS.values()}
    for version in store.client.search_model_versions(f"name = '{MODEL_NAME}'"):
        if version.tags.get(DECISION_TAG) != PENDING or str(version.version) in champions:
            continue
        if version.run_id and store.client.get_run(version.run_id).info.status == "RUNNING":
            continue
        store.client.delete_model_version(MODEL_NAME, version.version)
        repaired.append(f"{MODEL_NAME} version {version.version} was registered but never judged: deleted")
    return repaired


def champion_version(store: Store, alias: str = CHAMPION) -> str | None:
    """The version a champion alias (by default `champion`, the `with_distance` one) points at, or None."""
    try:
        return str(store.client.get_model_version_by_alias(MODEL_NAME, alias).version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Decision:
    """What registration did: the new version, and whether it became its feature set's champion (`alias`) and why."""

    version: str
    alias: str
    promoted: bool
    reason: str
    champion_rmse: float | None


def register(
    store: Store,
    model_uri: str,
    run_id: str,
    feature_set: FeatureSet,
    validation_key: str,
    rmse: float,
    rescore: Callable[[str], float],
    model_id: str | None = None,
) -> Decision:
    """Register a logged model and move its feature set's champion alias to it only if it beats that champion
    on this validation data.

    `validation_key` identifies the validation rows; `rescore(model_uri)` scores another version on them.
    `model_id` is the logged model's id (a tracking server needs it to resolve `models:/<id>` sources).
    """
    try:
        store.client.create_registered_model(MODEL_NAME)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {DECISION_TAG: PENDING, VALIDATION_TAG: validation_key, RMSE_TAG: repr(rmse)}  # repr: every digit
    created = store.client.create_model_version(MODEL_NAME, model_uri, run_id=run_id, tags=tags, model_id=model_id)
    version = str(created.version)
    crash_point("decide")
    current = champion_version(store, CHAMPIONS[feature_set])
    champion_rmse: float | None = None
    champions: dict[FeatureSet, Standing] = {}
    if current is not None:
        old = store.client.get_model_version(MODEL_NAME, current)
        if old.tags.get(VALIDATION_TAG) == validation_key and RMSE_TAG in old.tags:
            champion_rmse = float(old.tags[RMSE_TAG])
        else:
            champion_rmse = rescore(f"models:/{MODEL_NAME}/{current}")
        champions[feature_set] = Standing(current, feature_set, champion_rmse)
    verdict = decide(Standing(version, feature_set, rmse), champions)
    if verdict.promoted:
        store.client.set_registered_model_alias(MODEL_NAME, verdict.alias, version)
    outcome = "champion" if verdict.promoted else "not promoted"
    store.client.set_model_version_tag(MODEL_NAME, version, DECISION_TAG, outcome)
    return Decision(version, verdict.alias, verdict.promoted, verdict.reason, champion_rmse)
