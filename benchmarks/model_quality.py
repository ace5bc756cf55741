"""Model quality on real TLC months: both pipelines, both feature sets, against the baselines, in one run.

Run from the repository root, with the real green-taxi months beside the clone:

    python benchmarks/model_quality.py --data ../shared/data --months 2023-01..2023-03

Each combination is one `taxi-duration train` process on the same files (train on the first month,
validate on the second, test on the third), logged to a throwaway MLflow store. The tables compare every
model with the course baseline and the zone-pair median *on the same rows*, and give the test month too:
it is scored once, after every choice was made on the validation month.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from taxi_duration.months import parse_months

COMBOS = (("duckdb", "with_distance"), ("spark", "with_distance"), ("duckdb", "pretrip"), ("spark", "pretrip"))
# The baseline each feature set is judged against, as the training issue states the bar.
BAR = {"with_distance": ("course", 0.70), "pretrip": ("zone_pair_median", 0.75)}


def run(data: list[Path], engine: str, feature_set: str, store: Path) -> dict:
    """One training process; its outcome JSON."""
    out = store / f"{engine}-{feature_set}.json"
    env = {**os.environ, "TAXI_DURATION_DATA_DIR": str(store), "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db"}
    cmd = [sys.executable, "-m", "taxi_duration", "train", "--engine", engine, "--feature-set", feature_set]
    subprocess.run([*cmd, "--out", str(out), "--data", *map(str, data)], env=env, check=True, capture_output=True)
    return json.loads(out.read_text())


def table(outcome: dict, rows: str) -> list[str]:
    """Markdown rows: each model on the validation and test parts of one row set."""
    val, test = outcome["scores"][rows], outcome["scores"][rows.replace("validate", "test")]
    lines = []
    for name in ("model", "course", "zone_pair_median", "global_mean"):
        v, t = val[name]["overall"]["all"], test[name]["overall"]["all"]
        label = f"**ours: {outcome['engine']}, {outcome['model']}**" if name == "model" else name.replace("_", " ")
        lines.append(
            f"| {label} | {v['rmse']:.3f} | {v['mae']:.3f} | {v['r2']:.3f} | {v['rmsle']:.4f} | {t['rmse']:.3f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--service", default="green")
    parser.add_argument("--months", default="2023-01..2023-03")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/model_quality.json"))
    args = parser.parse_args()
    files = [args.data / f"{args.service}_tripdata_{m}.parquet" for m in parse_months(args.months)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine, feature_set in COMBOS:
            outcome = run(files, engine, feature_set, Path(tmp))
            print(f"{engine} {feature_set}: {outcome['elapsed_s']} s", file=sys.stderr, flush=True)
            results.append(outcome)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    header = ["| model | val RMSE | val MAE | val R2 | val RMSLE | test RMSE |", "|---|---:|---:|---:|---:|---:|"]
    for feature_set, (baseline, bar) in BAR.items():
        for rows, title in (("validate", "clean rows"), ("validate_course_rows", "the course's rows")):
            print(f"\n`{feature_set}`, {title}:\n")
            lines = list(header)
            for outcome in (o for o in results if o["feature_set"] == feature_set):
                body = table(outcome, rows)
                lines += body if not lines[2:] else body[:1]
            print("\n".join(lines))
        for outcome in (o for o in results if o["feature_set"] == feature_set):
            scores = outcome["scores"]["validate"]
            ratio = scores["model"]["overall"]["all"]["rmse"] / scores[baseline]["overall"]["all"]["rmse"]
            verdict = "meets" if ratio <= bar else "MISSES"
            print(f"\n{outcome['engine']} {feature_set}: {ratio:.2f}x the {baseline} RMSE ({verdict} the {bar}x bar)")
    print("\n".join(["", *coverage_table(results)]))


def coverage_table(results: list[dict]) -> list[str]:
    """Markdown rows: the share of test trips inside their p10-p90 interval, overall and by pickup borough."""
    boroughs = sorted({b for o in results for b in o["interval_coverage"] if b != "all"})
    lines = ["| run | all | " + " | ".join(boroughs) + " |", "|---|" + "---:|" * (len(boroughs) + 1)]
    for o in results:
        cells = []
        for b in ("all", *boroughs):
            c = o["interval_coverage"].get(b)
            cells.append(f"{c['coverage']:.1%} ({c['trips']:,.0f})" if c else "")
        lines.append(f"| {o['engine']} {o['feature_set']} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
