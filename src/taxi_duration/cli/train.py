"""`taxi-duration run|train`: the main job and the training job, which share one set of options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from taxi_duration.cli.common import (
    ConfigOpt,
    EngineOpt,
    FeatureSetOpt,
    MonthDecayOpt,
    MoreDataArg,
    OutJsonOpt,
    SearchOpt,
    SparkMasterOpt,
    TrainMonthsOpt,
    TuneBudgetOpt,
    TuneTrialsOpt,
    console,
    settings_from,
    spark_for,
    step_progress,
    takes_options,
    write_json,
)
from taxi_duration.cli.data import DEFAULT_MONTHS, synth
from taxi_duration.core.config import Settings, main_job_search

DEFAULT_RUN_ROWS = 300_000
SampleRowsOpt = Annotated[
    int | None,
    typer.Option(
        "--sample-rows",
        min=1,
        help="Train on this many training rows, drawn at random, for a quick model (default: every row).",
    ),
]


@dataclass(frozen=True)
class TrainingOptions:
    """The options `run` and `train` both take: the engine, the features, the split, the search, the outputs."""

    engine: EngineOpt = None
    feature_set: FeatureSetOpt = None
    train_months: TrainMonthsOpt = None
    search: SearchOpt = None
    tune_trials: TuneTrialsOpt = None
    tune_budget: TuneBudgetOpt = None
    month_decay: MonthDecayOpt = None
    sample_rows: SampleRowsOpt = None
    out: OutJsonOpt = None
    spark_master: SparkMasterOpt = None
    config: ConfigOpt = None

    def settings(self, **overrides: Any) -> Settings:
        """The settings these options give (over the --config file), with a command's own `overrides`."""
        return settings_from(
            self.config,
            self.engine,
            feature_set=self.feature_set,
            search=self.search,
            tune_trials=self.tune_trials,
            tune_budget_s=self.tune_budget,
            month_decay=self.month_decay,
            train_sample_rows=self.sample_rows,
            spark_master=self.spark_master,
            **overrides,
        )


@takes_options
def run(
    data: Annotated[
        list[str] | None,
        typer.Option(help="Trip files, globs or folders; default: synthesize a data set under the data dir."),
    ] = None,
    more: MoreDataArg = None,
    *,
    options: TrainingOptions,
    data_dir: Annotated[Path | None, typer.Option(help="Root for generated data, outputs and MLflow.")] = None,
) -> None:
    """The main job: ingest, validate, featurize, train, evaluate against the baselines, register in MLflow.

    On a fresh clone with no data it first synthesizes three months of trips. Unless a search is set, it
    trains the quick search's small models, and says so (`--search full`: the documented ones, as `train`).
    `--engine spark` runs the big-data pipeline (MLlib) end to end.
    """
    settings, note = main_job_search(options.settings(data_dir=data_dir))
    if note:
        console.print(note, highlight=False)
    data = [*(data or []), *(more or [])]
    if not data:
        synthetic = settings.data_dir / "synthetic"
        if not any(synthetic.glob("*.parquet")):
            synth(rows=str(DEFAULT_RUN_ROWS), months=DEFAULT_MONTHS, out=synthetic, seed=0)
        data = [str(synthetic)]
    _train(settings, data, options.train_months, options.out)


@takes_options
def train(
    data: Annotated[list[str], typer.Option(help="Trip files, globs or folders covering every month of the split.")],
    more: MoreDataArg = None,
    *,
    options: TrainingOptions,
    validate_data: Annotated[
        list[str] | None,
        typer.Option(
            help="Validation files, for data split by file rather than by month (the Kaggle trips); needs --test-data."
        ),
    ] = None,
    test_data: Annotated[list[str] | None, typer.Option(help="Test files, with --validate-data.")] = None,
) -> None:
    """Train on a time-honest split, score against the baselines, log to MLflow, register the model.

    The split is by month: the last two months are held out, or the two after --train-months. A data set
    its publisher split by file (the Kaggle trips) names its parts: --data for training, --validate-data
    and --test-data. The `champion` alias moves to the new version only if it beats the current champion
    on the same validation data. The tracking store is MLFLOW_TRACKING_URI when set, else SQLite under the
    data dir.
    """
    data = [*data, *(more or [])]
    _train(options.settings(), data, options.train_months, options.out, validate_data, test_data)


def _train(
    settings: Settings,
    data: list[str],
    train_months: str | None,
    out: Path | None,
    validate_data: list[str] | None = None,
    test_data: list[str] | None = None,
) -> None:
    from taxi_duration.ingest.inputs import check_all, discover
    from taxi_duration.train import splits
    from taxi_duration.train.job import STEPS, outcome_json
    from taxi_duration.train.job import train as run_training

    with console.status("checking input files"):
        spark = spark_for(settings)
        files = check_all(discover(data, spark))
        validate_files, test_files = (check_all(discover(p, spark)) if p else [] for p in (validate_data, test_data))
    split = splits.choose(files, train_months, validate_files, test_files)
    files = [*files, *validate_files, *test_files]
    sample = f"; training on a sample of {settings.train_sample_rows:,} rows" if settings.train_sample_rows else ""
    console.print(f"{split}; {settings.feature_set} features; {settings.engine} engine{sample}")
    # The MLflow store and the engine open before the first step (a Spark session takes its seconds).
    with step_progress("opening the MLflow store and the engine", STEPS) as (on_step, on_progress):
        outcome = run_training(settings, files, split, settings.feature_set, on_step, on_progress)
    _print_outcome(outcome)
    write_json(out, outcome_json(outcome))


def _print_outcome(outcome: Any) -> None:
    from taxi_duration.cli import render

    out = Console()
    out.print(render.data_table(outcome))
    if outcome.trained_rows < outcome.rows["train"]:
        out.print(f"trained on a sample of {outcome.trained_rows:,} of {outcome.rows['train']:,} training rows")
    title = f"Validation metrics, minutes ({outcome.engine}: {outcome.chosen}, {outcome.feature_set})"
    out.print(render.metrics_table(title, outcome.overall("validate"), outcome.overall("test")))
    d = outcome.decision
    status = f"[green]now the {d.alias}[/green]" if d.promoted else "[yellow]not promoted[/yellow]"
    out.print(f"model: taxi-duration v{d.version}, {status}: {d.reason}")
    out.print(f"MLflow run {outcome.run_id} in {outcome.tracking_uri}; open it with:", soft_wrap=True)
    out.print(outcome.ui_command, soft_wrap=True, markup=False, highlight=False)  # one line, to copy whole
    steps = ", ".join(f"{name} {s:.0f} s" for name, s in outcome.step_s.items())
    out.print(f"done in {outcome.elapsed_s:.0f} s ({steps})")
