"""Model quality on real TLC months: both pipelines, both feature sets, each training window, in one run.

Run from the repository root, with the real green-taxi months beside the clone:

    python benchmarks/model_quality.py --data ../shared/data --windows 2023-01,2021-01..2023-01
    python benchmarks/model_quality.py --data ../shared/data --engines duckdb --search tune --tune-budget 300

Each window is a `--train-months` range (months without a file are gaps, not errors); the month after it
validates and the one after that tests, so every window of the default run is judged on the same rows of
2023-02 and 2023-03. Each combination is one `taxi-duration train` process on the same files, logged to a
throwaway MLflow store. The course baseline and the zone-pair median are fitted on the same window as the
model; the tables compare every model with them *on the same rows*, and give the test month too: it is
scored once, after every choice was made on the validation month. The one-month window is today's
champion's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ENGINES = ("duckdb", "spark")
FEATURE_SETS = ("with_distance", "pretrip")
# The baseline each feature set is judged against, and the bar on the test month (issue 15).
BAR = {"with_distance": ("course", 0.66), "pretrip": ("zone_pair_median", 0.62)}


def run(data: Path, service: str, window: str, engine: str, feature_set: str, store: Path, search: list[str]) -> dict:
    """One training process (`search`: its search flags, none for the default); its outcome JSON."""
    out = store / f"{window}-{engine}-{feature_set}.json"
    env = {**os.environ, "TAXI_DURATION_DATA_DIR": str(store), "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"}
    cmd = [sys.executable, "-m", "taxi_duration", "train", "--engine", engine, "--feature-set", feature_set]
    cmd += ["--train-months", window, "--out", str(out), "--data", str(data / f"{service}_tripdata_*.parquet")]
    cmd += search
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return {"window": window, **json.loads(out.read_text())}


def rmse(outcome: dict, role: str, name: str) -> float:
    """Overall RMSE of one model or baseline on one part."""
    return outcome["scores"][role][name]["overall"]["all"]["rmse"]


def quality_table(results: list[dict], feature_set: str) -> list[str]:
    """Markdown rows: per window, each model and the baselines on the validation and test months."""
    baseline, bar = BAR[feature_set]
    lines = [
        f"| window | model | rows | val RMSE | test RMSE | test vs {baseline.replace('_', ' ')} |",
        "|---|---|---:|---:|---:|---:|",
    ]
    windows: set[str] = set()
    for o in (o for o in results if o["feature_set"] == feature_set):
        decay = o.get("params", {}).get("month_decay", 1.0)  # older months' weight, as chosen or set
        named = [(f"**{o['engine']}: {o['model']}**" + (f", month_decay {decay:.2f}" if decay != 1.0 else ""), "model")]
        if o["window"] not in windows:  # the baselines once per window, from its first run
            windows.add(o["window"])
            named += [("course baseline", "course"), ("zone-pair median", "zone_pair_median")]
        for label, name in named:
            ratio = rmse(o, "test", name) / rmse(o, "test", baseline)
            verdict = (" (meets)" if ratio <= bar else " (misses)") if name == "model" else ""
            lines.append(
                f"| {o['window']} | {label} | {o['rows']['train']:,} | {rmse(o, 'validate', name):.3f} "
                f"| {rmse(o, 'test', name):.3f} | {ratio:.3f}x{verdict} |"
            )
    return lines


def coverage_table(results: list[dict]) -> list[str]:
    """Markdown rows: the share of test trips inside their p10-p90 interval, overall and by pickup borough."""
    boroughs = sorted({b for o in results for b in o["interval_coverage"] if b != "all"})
    lines = ["| run | all | " + " | ".join(boroughs) + " |", "|---|" + "---:|" * (len(boroughs) + 1)]
    for o in results:
        cells = []
        for b in ("all", *boroughs):
            c = o["interval_coverage"].get(b)
            cells.append(f"{c['coverage']:.1%} ({c['trips']:,.0f})" if c else "")
        lines.append(f"| {o['window']} {o['engine']} {o['feature_set']} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder of TLC Parquet months")
    parser.add_argument("--service", default="green")
    parser.add_argument("--windows", default="2023-01,2021-01..2023-01", help="comma-separated --train-months")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--search", choices=["full", "tune"], default="full", help="the trainings' --search")
    parser.add_argument("--tune-budget", type=float, help="seconds for each tuned search (default: the setting's)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/model_quality.json"))
    args = parser.parse_args()
    search = ["--search", args.search]
    if args.tune_budget is not None:
        if args.search != "tune":
            parser.error("--tune-budget needs --search tune")
        search += ["--tune-budget", str(args.tune_budget)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for window in args.windows.split(","):
            for feature_set in FEATURE_SETS:
                for engine in args.engines.split(","):
                    outcome = run(args.data, args.service, window, engine, feature_set, Path(tmp), search)
                    print(f"{window} {engine} {feature_set}: {outcome['elapsed_s']} s", file=sys.stderr, flush=True)
                    results.append(outcome)
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for feature_set in FEATURE_SETS:
        print("\n".join([f"\n`{feature_set}`:\n", *quality_table(results, feature_set)]))
    print("\n".join(["", *coverage_table(results)]))


if __name__ == "__main__":
    main()
