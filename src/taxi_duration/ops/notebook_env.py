"""Where a notebook runs, and what goes with it: the trip files, a work folder, the settings and MLflow store.

Every notebook in `notebooks/` calls `where_am_i` right after its parameters cell, so no notebook holds a path
or an environment test of its own.

- On Databricks (`DATABRICKS_RUNTIME_VERSION` is set): trip files and outputs live in a Unity Catalog volume,
  read through its `/Volumes/catalog/schema/volume/...` path, which Python's file functions and Spark both
  read (a `dbfs:/x` path is read through its `/dbfs/x` mount); a job's parameters arrive as widgets; Spark is
  the cluster's session (`spark.get_spark` returns the active one) and MLflow is the workspace's.
- Locally: the real green months of `shared/data` when found beside the working folder or one of its parents,
  else small synthetic months made by `synth`; a work folder under the temp dir that the notebooks share
  (04 registers the model 05 serves); a local Spark session when a notebook asks for one; the SQLite store in
  the work folder.

A parameter that names data that is not there fails at once with one line (`UsageError`), shown as that line
rather than a traceback.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from taxi_duration.core.config import Engine, Settings, load_settings
from taxi_duration.core.errors import TaxiDurationError, UsageError
from taxi_duration.core.months import Month, parse_months
from taxi_duration.engines.frames import Runtime
from taxi_duration.ingest.inputs import InputFile, check_all, discover

DATABRICKS_ENV = "DATABRICKS_RUNTIME_VERSION"
DATABRICKS_TRACKING = "databricks"  # the workspace's MLflow tracking server and model registry
# On Databricks an experiment is named by its absolute workspace path.
DATABRICKS_EXPERIMENT = "/Shared/taxi-duration"
MONTHS = "2023-01..2023-03"  # train, validate, test: what the notebooks' split needs
SERVICE = "green"
SHARED = Path("shared") / "data"  # the real TLC files, beside a checkout
SHARED_LEVELS = 2  # parents of the working folder searched for it, no higher: a stray /tmp/shared is not it
LOCAL_WORK = "taxi-duration-notebooks"
SYNTHETIC_ROWS = 30_000  # over the three months: small enough for a laptop's Spark, big enough to learn from
# The parameters a Databricks job passes (as widgets, `base_parameters` in databricks.yml).
PARAMETERS = ("data", "work", "months", "search")
# Folders of the volume: trip files uploaded here, notebook outputs written there.
VOLUME_TRIPS, VOLUME_WORK = "trips", "work"


@dataclass(frozen=True)
class NotebookEnv:
    """What a notebook works with: where it runs, its checked trip files, its work folder and settings."""

    databricks: bool
    origin: str  # how the data was chosen: parameter, volume, shared, synthetic
    files: list[InputFile]
    work: Path
    settings: Settings

    def runtime(self, engine: str = "duckdb") -> Runtime:
        """An engine opened with these settings (`spark`: the cluster's session on Databricks)."""
        return Runtime.open(self.settings, Engine.parse(engine))

    def path(self, name: str) -> Path:
        """A folder or file of the work folder, for one notebook's outputs."""
        return self.work / name

    def describe(self) -> pd.DataFrame:
        """Where am I, as a small table."""
        months = sorted({str(Month.from_yyyymm(f.month)) for f in self.files if f.month})
        rows = {
            "running on": f"Databricks {os.environ[DATABRICKS_ENV]}" if self.databricks else "this machine",
            "trip files": f"{len(self.files)} ({self.origin}): {', '.join(f.path.name for f in self.files)}",
            "months": ", ".join(months),
            "trips": f"{sum(f.rows for f in self.files):,}",
            "data folder": str(self.files[0].path.parent),
            "work folder": str(self.work),
            "MLflow": str(self.settings.mlflow_tracking_uri),
            "Spark master": "the cluster's session" if self.databricks else self.settings.spark_master,
        }
        return pd.DataFrame({"": list(rows.values())}, index=list(rows))


def on_databricks() -> bool:
    """Whether this process runs on a Databricks cluster."""
    return bool(os.environ.get(DATABRICKS_ENV))


def where_am_i(
    data: str = "",
    work: str = "",
    *,
    months: str = MONTHS,
    catalog: str = "main",
    schema: str = "taxi_duration",
    volume: str = "tlc",
    search: str = "quick",
) -> NotebookEnv:
    """The environment of a notebook, from its parameters (empty ones take the defaults described above).

    Args:
        data: trip files: a folder, a file or a glob (`/Volumes/...`, `dbfs:/...` or a local path).
        work: the folder outputs, the feature store and (locally) the MLflow store go to.
        months: the months of the trip files to keep (`2023-01..2023-03`): train, validate, test.
        catalog, schema, volume: the Unity Catalog volume of the defaults on Databricks.
        search: the model search (`quick` or `full`).

    Raises:
        UsageError: `data` names nothing, or no trip file of `months`.
    """
    show_errors_as_one_line()
    databricks = on_databricks()
    if databricks:
        found = _widgets(dict(zip(PARAMETERS, (data, work, months, search), strict=True)))
        data, work, months, search = found["data"], found["work"], found["months"], found["search"]
    wanted = parse_months(months)
    volume_root = Path("/Volumes") / catalog / schema / volume
    work_dir = Path(_local(work)) if work else (volume_root / VOLUME_WORK if databricks else _local_work())
    work_dir.mkdir(parents=True, exist_ok=True)
    if data:
        origin, specs = "parameter", [_local(data)]
    elif databricks:
        origin, specs = "volume", [str(volume_root / VOLUME_TRIPS)]
    elif (shared := find_shared()) is not None:
        origin, specs = "shared", [str(shared / f"{SERVICE}_tripdata_{m}.parquet") for m in wanted]
    else:
        origin, specs = "synthetic", [str(synthetic_months(work_dir / "synthetic", wanted))]
    files = [f for f in check_all(discover(specs)) if f.month in {m.yyyymm for m in wanted}]
    if not files:
        raise UsageError(f"no trip file of {months} in {', '.join(specs)}")
    overrides: dict[str, Any] = {"data_dir": work_dir, "search": search}
    if databricks:
        overrides |= {"mlflow_tracking_uri": DATABRICKS_TRACKING, "mlflow_experiment": DATABRICKS_EXPERIMENT}
    return NotebookEnv(databricks, origin, files, work_dir, load_settings(**overrides))


def find_shared(start: Path | None = None) -> Path | None:
    """The `shared/data` folder of real TLC files in `start` (default: the working folder) or one of its
    `SHARED_LEVELS` parents: beside the checkout, whether a notebook runs from the checkout or its notebooks/."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents[:SHARED_LEVELS]):
        if (folder / SHARED / f"{SERVICE}_tripdata_{MONTHS[:7]}.parquet").is_file():
            return folder / SHARED
    return None


def synthetic_months(folder: Path, months: list[Month], rows: int = SYNTHETIC_ROWS) -> Path:
    """Small synthetic months in `folder`, made once (the same seed gives the same bytes)."""
    from taxi_duration.ingest.synth import generate

    if not all((folder / f"{SERVICE}_tripdata_{m}.parquet").is_file() for m in months):
        generate(rows, months, folder, seed=0, service=SERVICE)
    return folder


def _local_work() -> Path:
    return Path(tempfile.gettempdir()) / LOCAL_WORK


def _local(path: str) -> str:
    """A path the package's file functions can open: `dbfs:/x` is read through its `/dbfs/x` mount."""
    return "/dbfs/" + path.removeprefix("dbfs:").lstrip("/") if path.startswith("dbfs:") else path


def _widgets(defaults: dict[str, str]) -> dict[str, str]:
    """On Databricks, a job's parameters arrive as widgets: declare each with its default, read it back."""
    from databricks.sdk.runtime import dbutils  # type: ignore[import-not-found]

    for name, value in defaults.items():
        dbutils.widgets.text(name, value)
    return {name: dbutils.widgets.get(name) for name in defaults}


def show_errors_as_one_line() -> None:
    """In a notebook, show the project's errors (bad input, a missing folder) as their one line, not a traceback;
    the cell still fails, so a job or a test running the notebook stops there."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def one_line(shell: Any, kind: type, error: BaseException, tb: Any, tb_offset: int | None = None) -> list[str]:
        label = error.label if isinstance(error, TaxiDurationError) else kind.__name__
        line = f"{label}: {error}"
        print(line, file=sys.stderr)
        return [line]

    shell.set_custom_exc((TaxiDurationError,), one_line)
