"""`taxi-duration drift`: the command, registered by `cli/main.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from taxi_duration.cli.common import ConfigOpt, EngineOpt, SparkMasterOpt, console, settings_from, spark_for
from taxi_duration.core.config import DEFAULT_MODEL


def drift(
    reference: Annotated[list[str], typer.Option(help="Trip files, globs or folders the current ones are held to.")],
    current: Annotated[list[str], typer.Option(help="Trip files, globs or folders to check.")],
    out: Annotated[Path, typer.Option(help="Output folder: summary.json, report.html, plots/.")],
    model: Annotated[
        str | None,
        typer.Option(help=f"Model URI ({DEFAULT_MODEL}, ...): adds prediction drift and the model's error."),
    ] = None,
    engine: EngineOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output folder if it exists.")] = False,
    spark_master: SparkMasterOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Compare current trips with reference trips: exit 0 if nothing drifts, 3 (naming the checks) if drift.

    Categorical features by PSI, numeric ones and the trip minutes by Kolmogorov-Smirnov, counted on the
    engine over every row; with --model, its predictions and its RMSE against the one logged on validation.
    Thresholds are settings (drift_psi_threshold, drift_ks_threshold, drift_rmse_ratio_threshold). A
    scheduler retrains on exit 3: `taxi-duration drift ...; [ $? -eq 3 ] && taxi-duration run ...`.
    """
    from taxi_duration.cli import render
    from taxi_duration.ingest.inputs import check_all, discover
    from taxi_duration.monitor import drift_report
    from taxi_duration.monitor.drift import compare, drift_error

    settings = settings_from(config, engine, spark_master=spark_master)
    with console.status("checking input files"):
        spark = spark_for(settings)
        ref_files, cur_files = check_all(discover(reference, spark)), check_all(discover(current, spark))
    with console.status("comparing") as status:
        result = compare(settings, ref_files, cur_files, model, on_step=status.update)
        drift_report.write(result, out, overwrite=overwrite)
    Console().print(render.drift_table(result))
    console.print(f"report in {out / drift_report.REPORT}, every check in {out / drift_report.SUMMARY}")
    if result.crossed:
        raise drift_error(result)
