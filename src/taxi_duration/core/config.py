"""Settings: one typed object for paths, engine, Spark master and MLflow, loaded once.

Precedence, highest first: command-line flags, environment (`TAXI_DURATION_*`, and MLflow's own
`MLFLOW_TRACKING_URI`), a TOML file (`taxi-duration.toml` in the working directory, or the one named by
`--config`), then the defaults below, which work on a fresh clone.
"""

from __future__ import annotations

import atexit
import os
import shutil
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from taxi_duration.core.errors import UsageError

CONFIG_FILE = Path("taxi-duration.toml")
# What marks a project's root folder, where its `data` folder is.
PROJECT_MARKERS = (CONFIG_FILE.name, "pyproject.toml", ".git")
# The MLflow registry's model, and the aliases of the versions that are served (tracking.py moves them): one
# champion per feature set, `champion` for `with_distance` (the alias every command reads by default) and
# `champion-pretrip` for what a booking screen can use. Named here, not in tracking.py, so that the command
# line can show the default without loading MLflow.
MODEL_NAME = "taxi-duration"
CHAMPION = "champion"
PRETRIP_CHAMPION = "champion-pretrip"
DEFAULT_MODEL = f"models:/{MODEL_NAME}@{CHAMPION}"


class Engine(StrEnum):
    """Where transformations run. `duckdb` is the embedded default; `local` is its alias."""

    DUCKDB = "duckdb"
    PANDAS = "pandas"
    SPARK = "spark"

    @classmethod
    def parse(cls, value: str) -> Engine:
        """Accept an engine name or the `local` alias for the embedded engine."""
        try:
            return cls.DUCKDB if value == "local" else cls(value)
        except ValueError:
            raise UsageError(f"unknown engine {value!r}: choose duckdb (or local), pandas or spark") from None


class Search(StrEnum):
    """How much model search training does."""

    FULL = "full"
    QUICK = "quick"
    TUNE = "tune"  # an Optuna study (embedded engines; the `tune` extra) or a wider grid (Spark), then a refit


# The search of the main job (`run`) when no flag, environment variable or file sets one. Its 300,000 synthetic
# trips leave about 90,000 to train on: there the full search's 600 rounds took most of the job's time and
# scored no better (validation RMSE 5.17 min against the quick search's 5.11). `train` keeps the full search.
MAIN_JOB_SEARCH = Search.QUICK


class FeatureSet(StrEnum):
    """What a model may know (features.py holds each set's features)."""

    WITH_DISTANCE = "with_distance"  # adds the metered distance, as the course's baselines do
    PRETRIP = "pretrip"  # what is known when the ride is booked


# The alias each feature set's champion holds, and the URIs `serve` and `stream` follow when no model is given.
CHAMPIONS: dict[FeatureSet, str] = {FeatureSet.WITH_DISTANCE: CHAMPION, FeatureSet.PRETRIP: PRETRIP_CHAMPION}
CHAMPION_MODELS: tuple[str, ...] = tuple(f"models:/{MODEL_NAME}@{alias}" for alias in CHAMPIONS.values())


class Settings(BaseSettings):
    """Every setting the commands share."""

    model_config = SettingsConfigDict(env_prefix="TAXI_DURATION_", extra="forbid", toml_file=CONFIG_FILE)

    data_dir: Path = Field(
        default_factory=lambda: project_data_dir(),
        description="Root for downloads, synthetic data, outputs, MLflow. Default: `data` in the project the "
        "working folder is in (the nearest folder, this one or above, with a data/mlflow store, a "
        "taxi-duration.toml, a pyproject.toml or a .git), so a command run from a sub-folder finds the same store.",
    )
    engine: Engine = Field(Engine.DUCKDB, description="duckdb (embedded, default), pandas, or spark.")
    spark_master: str = Field("local[*]", description="Spark master URL: local[*], spark://host:7077, yarn...")
    spark_executor_wait_seconds: float = Field(
        60.0,
        gt=0,
        description="On a spark:// master, how long a session waits for its first executor before it gives up "
        "with an error (Spark alone would wait forever when no worker can host one).",
    )
    spark_driver_memory: str = Field("4g", description="spark.driver.memory for sessions this tool starts.")
    spark_parallelism: int = Field(2, ge=1, description="Models the Spark search fits at once.")
    search: Search = Field(
        Search.FULL,
        description="full: the documented models; quick: small ones, for smoke tests and trying things (`run`, "
        "the main job, uses quick unless a search is set); tune: an Optuna study over LightGBM's parameters "
        "(embedded engines), or over XGBoost's with trials as tasks on the executors beside a wider concurrent grid "
        "(Spark), chosen on the validation month, then refit.",
    )
    tune_trials: int = Field(50, ge=1, description="`--search tune`: at most this many trials.")
    tune_budget_s: float = Field(
        600.0,
        gt=0,
        description="`--search tune`: no trial starts after this many seconds of the study, and on Spark no "
        "candidate after as many seconds of the search that follows it (one started finishes).",
    )
    refit_tree_scale: float = Field(
        1.1,
        gt=0,
        description="`--search tune`: the chosen parameters are trained again on the training and validation "
        "months with the best trial's rounds (on Spark, the chosen trees) times this; the validation score, the "
        "champion rule and the interval use the model before that refit.",
    )
    month_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="With a training window of several months, each month weighs this much less than the month "
        "after it (a row n months older than the newest training month weighs month_decay**n); 1: every month "
        "the same. `--search tune` chooses it on the validation month instead.",
    )
    train_sample_rows: int | None = Field(
        None,
        ge=1,
        description="Train the model and the course baseline on this many of their training rows, drawn at "
        "random, for a quick model; default: every row.",
    )
    feature_set: FeatureSet = Field(
        FeatureSet.WITH_DISTANCE, description="Features models train on: with_distance or pretrip."
    )
    zone_shapes: Path | None = Field(
        None,
        description="The TLC zone shapes, for trips with coordinates instead of zones: a shapefile zip "
        "(taxi_zones.zip, as `taxi-duration download --shapes` fetches it); default: the shapes the package ships.",
    )
    duckdb_memory_limit: str | None = Field(None, description="DuckDB memory_limit, e.g. '2GB'.")
    api_key: SecretStr | None = Field(None, description="When set, prediction calls must send it as X-API-Key.")
    postgres_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:port/db for `predict`; kept secret, never printed."
    )
    admin_key: SecretStr | None = Field(None, description="When set, enables admin calls (X-API-Key); else off.")
    drift_psi_threshold: float = Field(
        0.2, gt=0, description="`drift`: a categorical feature drifts when its PSI is above this (0.1-0.25: moderate)."
    )
    drift_ks_threshold: float = Field(
        0.1,
        gt=0,
        le=1,
        description="`drift`: a numeric feature, the trip minutes or the predictions drift when their "
        "Kolmogorov-Smirnov statistic is above this.",
    )
    drift_rmse_ratio_threshold: float = Field(
        1.2, gt=0, description="`drift`: the model's RMSE on the current window over its validation RMSE, at most."
    )
    drift_min_rows: int = Field(
        2_000,
        ge=1,
        description="`drift`: a window with fewer trips to compare cannot be judged (exit 1, not 3): on a real "
        "month, 1,000 random trips alone give a zone PSI of 0.24 against the rest (docs/drift.md).",
    )
    drift_sample_rows: int = Field(
        200_000, ge=1, description="`drift`: trips of each window the model predicts (a random sample)."
    )
    stream_watermark: str = Field(
        "1 hour",
        description="How long after its first arrival a redelivered trip_id is still recognised, and dropped, by "
        "the stream (its dedup state); the clock is the arrival, so no event is ever too late to be scored.",
    )
    stream_settle_seconds: float = Field(
        1.0,
        gt=0,
        description="The stream reads a landed file once it has not changed for this long: a file still being "
        "written waits, and bytes appended later are read later.",
    )
    stream_trigger_seconds: float = Field(5.0, gt=0, description="How often the stream starts a micro-batch.")
    stream_max_files_per_trigger: int = Field(
        100, ge=1, description="At most this many landed files per micro-batch: bounds a batch's memory."
    )
    dashboard_metrics_url: str = Field(
        "http://127.0.0.1:8000/metrics", description="`dashboard`: the prediction server whose /metrics Live shows."
    )
    dashboard_reports: Path | None = Field(
        None,
        description="`dashboard`: the folder searched (recursively) for `validate` reports and `drift` summaries; "
        "default: the data dir.",
    )
    dashboard_stream: Path | None = Field(
        None, description="`dashboard`: the `stream --output` folder whose throughput and lag Live shows."
    )
    dashboard_max_quarantined_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="`dashboard`: the latest data-quality check is red when more than this share of rows was "
        "quarantined (real green-taxi months: 5-8%).",
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; defaults to MLFLOW_TRACKING_URI, then a SQLite store in data_dir."
    )
    mlflow_experiment: str = Field(
        "taxi-duration",
        description="The MLflow experiment training runs go to; on Databricks an absolute workspace path "
        "(/Shared/taxi-duration).",
    )

    @model_validator(mode="after")
    def _defaults_under_data_dir(self) -> Settings:
        if self.dashboard_reports is None:
            self.dashboard_reports = self.data_dir
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or (
                f"sqlite:///{(self.data_dir / 'mlflow' / 'mlflow.db').resolve()}"
            )
        return self

    def scratch_dir(self) -> Path:
        """This process's folder for working files under the data dir, created on first use.

        It is named by the run's tag (pid and start time) and removed when the process exits; the first call
        also removes the folders of runs that were killed (their process is gone), never a live run's.
        """
        return _scratch(self.data_dir.resolve() / "tmp")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


SCRATCH_PREFIX = "run-"


@cache
def _scratch(root: Path) -> Path:
    from taxi_duration.core.atomic import remove_leftovers, run_tag

    root.mkdir(parents=True, exist_ok=True)
    remove_leftovers(root, SCRATCH_PREFIX)
    path = root / f"{SCRATCH_PREFIX}{run_tag()}"
    path.mkdir(exist_ok=True)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def main_job_search(settings: Settings) -> tuple[Settings, str | None]:
    """The main job's settings: `MAIN_JOB_SEARCH` unless a search was set (flag, environment or file), and
    the line that tells the user so (None when the search was theirs)."""
    if "search" in settings.model_fields_set:
        return settings, None
    note = f"{MAIN_JOB_SEARCH} search (the main job's default); --search full trains the documented models"
    return settings.model_copy(update={"search": MAIN_JOB_SEARCH}), note


def project_data_dir(start: Path | None = None) -> Path:
    """`data` in the project `start` (default: the working folder) is in: the nearest folder, `start` or
    above, that has a `data/mlflow` store or a PROJECT_MARKERS file; `data` in `start` when none has."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "data" / "mlflow").is_dir() or any((folder / m).exists() for m in PROJECT_MARKERS):
            return Path("data") if folder == here else folder / "data"
    return Path("data")


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from a TOML file (optional), the environment and explicit overrides.

    Overrides that are None are ignored, so CLI flags left unset fall through to lower layers.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    cls: type[Settings] = Settings
    if config_file is not None:
        if not config_file.is_file():
            raise UsageError(f"config file not found: {config_file}")
        cls = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": config_file}})
    try:
        return cls(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid settings ({problems})") from exc
