"""What the commands show: the tables and lines built for the commands to print."""

from __future__ import annotations

from rich.console import Console

from taxi_duration.cli.render import metrics_table


def test_the_ratio_legend_is_one_of_the_rows() -> None:
    scores = {
        name: {"rmse": rmse, "mae": 1.0, "r2": 0.5, "rmsle": 0.1}
        for name, rmse in (("model", 5.0), ("course", 6.25), ("zone_pair_median", 8.0), ("global_mean", 10.0))
    }
    out = Console(record=True, width=200)
    out.print(metrics_table("metrics", scores))
    text = out.export_text()
    assert "course (0.80x)" in text
    assert "(0.80x) beside course: our RMSE / its RMSE = 5.000 / 6.250" in text
