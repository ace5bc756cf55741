"""Predict how long a New York taxi trip will take, on one machine or a Spark cluster.

The sub-packages are the data's path from a TLC file to a prediction, each importing only those below it
(the order `make lint` checks, in `pyproject.toml`'s import-linter contract; `docs/architecture.md` maps it):

    cli       the `taxi-duration` command
    ops       the local Spark cluster, the notebooks' environment, benchmarks' tools
    monitor   evaluate, drift, the dashboard
    stream    streaming predictions      train     the training job and its trainers
    serve     bundle, native models, the one scorer, the API
    registry  the MLflow store and the champion rule
    ingest    inputs, readers, validation rules and the validate job
    features  every feature, and the feature store
    engines   pandas, DuckDB and Spark behind one interface; the Spark session
    geo       zones, shapes, the calibration profile
    core      settings, errors, the trip schema, months, atomic outputs, storage
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType

__version__ = "0.1.0"

# OpenMP threads (LightGBM's) that finish their share spin until the others do. On a busy machine the thread
# they wait for is often descheduled, so the spinning burns the CPU it needs: training the main job's model
# took 142 s of CPU instead of 13 s at nice 19 beside a benchmark, for the same model. Waiting threads sleep
# instead; a user's own setting wins. OpenMP reads it once, when LightGBM loads: hence here, before any import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# MLflow draws a download bar on stderr once tqdm is installed (Optuna brings it): errors must stay one line.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

# MLflow stores a copy of `serve/pyfunc_entry.py` with every model it logs; the copies of models logged before
# the package had sub-packages import the scorer by the names it had then. Those names stay importable.
LOGGED_MODEL_IMPORTS = {
    "taxi_duration.scorer": "taxi_duration.serve.scorer",
    "taxi_duration.model": "taxi_duration.serve.scorer",  # before the scorer, the pyfunc lived in model.py
}


class _LoggedModelImports(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module name to today's module, only when something imports it (nothing loads early)."""

    def find_spec(self, name: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in LOGGED_MODEL_IMPORTS:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(LOGGED_MODEL_IMPORTS[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is today's, already imported."""


if not any(isinstance(finder, _LoggedModelImports) for finder in sys.meta_path):
    sys.meta_path.append(_LoggedModelImports())
