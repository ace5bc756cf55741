"""Benchmark the training job: rows/s and peak memory of `taxi-duration train` on each pipeline.

Run from the repository root:

    python benchmarks/train.py --rows 10M --engines duckdb,spark --search quick

The training month (2023-01) holds `--rows` synthetic trips; the validation and test months hold 500,000
between them, so the time is dominated by training. Each run is a fresh `taxi-duration train` process with
its own MLflow store, measured by `taxi_duration.ops.bench.measure` (wall time, CPU time user+sys, peak RSS of
the process tree, the JVM included), with the job's own time for each of its steps. Rows/s counts modeled
training rows over the whole job's wall time, and over the train step alone as the job reports it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from taxi_duration.core.months import parse_months
from taxi_duration.ingest.synth import generate, parse_rows
from taxi_duration.ops.bench.measure import run_measured

HELD_OUT_ROWS = 500_000


def make_data(root: Path, rows: int) -> list[Path]:
    """Training month with `rows` trips and two held-out months, made once and reused."""
    train, held_out = root / f"train-{rows}", root / "held-out"
    if not any(train.glob("*.parquet")):
        generate(rows, parse_months("2023-01"), train, seed=0)
    if not any(held_out.glob("*.parquet")):
        generate(HELD_OUT_ROWS, parse_months("2023-02..2023-03"), held_out, seed=1)
    return [train, held_out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", action="append", default=None, help="training rows (repeatable); default 10M")
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--search", default="quick", choices=["quick", "full"])
    parser.add_argument("--feature-set", default="with_distance")
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train.json"))
    args = parser.parse_args()

    results = []
    for rows in [parse_rows(r) for r in args.rows or ["10M"]]:
        data = make_data(args.data_dir, rows)
        for engine in args.engines.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                outcome_file = Path(tmp) / "outcome.json"
                cmd = [
                    sys.executable, "-m", "taxi_duration", "train", "--engine", engine, "--search", args.search,
                    "--feature-set", args.feature_set, "--out", str(outcome_file), "--data", *map(str, data),
                ]  # fmt: skip
                env_args = {"TAXI_DURATION_DATA_DIR": tmp, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
                measured = run_measured(["env", *(f"{k}={v}" for k, v in env_args.items()), *cmd])
                ok = measured.returncode == 0
                outcome = json.loads(outcome_file.read_text()) if ok else {}
            trained = outcome.get("rows", {}).get("train", 0)
            fit_s = outcome.get("step_s", {}).get("train", float("nan"))
            row = {
                "engine": engine,
                "pipeline": "Spark ML (MLlib + XGBoost)" if engine == "spark" else "scikit-learn + LightGBM",
                "search": args.search,
                "rows": rows,
                "train_rows": trained,
                "model": outcome.get("model"),
                "wall_s": round(measured.wall_s, 1),
                "cpu_s": round(measured.cpu_s, 1),
                "train_step_s": round(fit_s, 1),
                "step_s": outcome.get("step_s", {}),
                "rows_per_s": round(trained / measured.wall_s) if ok else None,
                "train_rows_per_s": round(trained / fit_s) if ok and fit_s else None,
                "peak_rss_mib": round(measured.peak_rss_bytes / 2**20),
                "validate_rmse": outcome.get("scores", {})
                .get("validate", {})
                .get("model", {})
                .get("overall", {})
                .get("all", {})
                .get("rmse"),
                "ok": ok,
                "error": None if ok else measured.stderr_tail[-500:],
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| engine | pipeline | train rows | job wall | job CPU | train step | train rows/s | peak RSS | val RMSE |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        rmse = f"{r['validate_rmse']:.3f}" if r["validate_rmse"] else "-"
        print(
            f"| {r['engine']} | {r['pipeline']} ({r['model']}) | {r['train_rows']:,} | {r['wall_s']} s | "
            f"{r['cpu_s']} s | {r['train_step_s']} s | {r['train_rows_per_s'] or '-':,} | "
            f"{r['peak_rss_mib']:,} MiB | {rmse} |"
        )


if __name__ == "__main__":
    main()
