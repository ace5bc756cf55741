"""Benchmark the training job: rows/s and peak memory of `taxi-duration train` on each pipeline.

Run from the repository root:

    python benchmarks/train.py --rows 10M --engines duckdb,spark --search quick
    python benchmarks/train.py --rows 10M --engines duckdb,spark --search full --workers 2
    python benchmarks/train.py --rows 8000 --held-out 16000 --engines duckdb,spark --search quick

The training month (2023-01) holds `--rows` synthetic trips; the validation and test months hold 500,000
between them (`--held-out`), so the time is dominated by training; `--rows 8000 --held-out 16000` is the tests'
24,000 trips, where Spark's fixed costs are the time. Each run is a fresh `taxi-duration train` process with
its own MLflow store, measured by `taxi_duration.ops.bench.measure` (wall time, CPU time user+sys, peak RSS of
the process tree, the JVM included), with the job's own time for each of its steps. Rows/s counts modeled
training rows over the whole job's wall time, and over the train step alone as the job reports it.

Spark runs in local mode, or with `--workers N` on a fresh standalone cluster of N workers
(`taxi_duration.ops.cluster`, `--cores-per-worker` and `--memory-per-worker` each). There the job's process is
the driver, and the workers' executors (their JVMs and Python workers) are measured apart: their CPU, so the
driver's share of the job's CPU, and each executor's peak memory from Spark's event log (`bench.stages`),
with the bytes shuffled.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from taxi_duration.core.months import parse_months
from taxi_duration.ingest.synth import generate, parse_rows
from taxi_duration.ops import cluster
from taxi_duration.ops.bench import stages
from taxi_duration.ops.bench.measure import run_measured

HELD_OUT_ROWS = 500_000
MIB = 2**20


def make_data(root: Path, rows: int, held_out_rows: int = HELD_OUT_ROWS) -> list[Path]:
    """Training month with `rows` trips and two held-out months of `held_out_rows` between them, made once and
    reused."""
    train = root / f"train-{rows}"
    held_out = root / ("held-out" if held_out_rows == HELD_OUT_ROWS else f"held-out-{held_out_rows}")
    if not any(train.glob("*.parquet")):
        generate(rows, parse_months("2023-01"), train, seed=0)
    if not any(held_out.glob("*.parquet")):
        generate(held_out_rows, parse_months("2023-02..2023-03"), held_out, seed=1)
    return [train, held_out]


@contextlib.contextmanager
def spark_master(workers: int, cores: int, memory: str, scratch: Path) -> Iterator[tuple[dict[str, str], list[int]]]:
    """The environment that points a Spark job at its master and logs its events into `scratch/events`, and
    the pids of the cluster's workers: local mode for 0 workers, else a fresh standalone cluster, stopped when
    the block ends."""
    events = stages.event_log_submit_args(scratch / "events")
    if not workers:
        yield {"PYSPARK_SUBMIT_ARGS": events}, []
        return
    state = scratch / "cluster"
    up = cluster.up(state, workers, cores, memory)
    try:
        executor_memory = f"{int(memory[:-1]) * 3 // 4}{memory[-1]}"  # room for the JVM's own overhead
        submit = f"--conf spark.executor.memory={executor_memory} {events}"
        yield (
            {"TAXI_DURATION_SPARK_MASTER": up.master_url, "PYSPARK_SUBMIT_ARGS": submit},
            [int(tag.partition("-")[0]) for tag in up.workers],
        )
    finally:
        cluster.down(state)


def on_spark(events: Path, beside_cpu_s: float, driver_cpu_s: float) -> dict[str, Any]:
    """What the event log says of a Spark run, and the driver's share of the job's CPU on a cluster."""
    found = stages.read(events)
    totals = stages.totals(found)
    peaks = stages.read_executor_peaks(events)
    return {
        "jobs": totals["jobs"],
        "stages": totals["stages"],
        "shuffle_write_mib": round(totals["shuffle_write_bytes"] / MIB),
        "spill_mib": round(totals["spill_bytes"] / MIB),
        "executor_cpu_s": round(beside_cpu_s, 1) if beside_cpu_s else None,
        "driver_cpu_share": round(driver_cpu_s / (driver_cpu_s + beside_cpu_s), 3) if beside_cpu_s else None,
        "executor_peak_rss_mib": {e: round(p["rss"] / MIB) for e, p in sorted(peaks.items())},
        "executor_peak_heap_mib": {e: round(p["heap"] / MIB) for e, p in sorted(peaks.items())},
        "by_step": {step or "(no step)": t for step, t in stages.by_step(found).items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", action="append", default=None, help="training rows (repeatable); default 10M")
    parser.add_argument(
        "--held-out", default=f"{HELD_OUT_ROWS}", help="trips of the validation and test months between them"
    )
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--search", default="quick", choices=["quick", "full"])
    parser.add_argument("--feature-set", default="with_distance")
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train.json"))
    parser.add_argument("--workers", type=int, default=0, help="Spark on a standalone cluster of N workers (0: local)")
    parser.add_argument("--cores-per-worker", type=int, default=1)
    parser.add_argument("--memory-per-worker", default="8g")
    args = parser.parse_args()

    results = []
    for rows in [parse_rows(r) for r in args.rows or ["10M"]]:
        data = make_data(args.data_dir, rows, parse_rows(args.held_out))
        for engine in args.engines.split(","):
            spark = engine == "spark"
            workers = args.workers if spark else 0
            with contextlib.ExitStack() as stack:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=args.data_dir))
                outcome_file, events = Path(tmp) / "outcome.json", Path(tmp) / "events"
                events.mkdir()
                cores, memory = args.cores_per_worker, args.memory_per_worker
                master, pids = (
                    stack.enter_context(spark_master(workers, cores, memory, Path(tmp))) if spark else ({}, [])
                )
                cmd = [
                    sys.executable, "-m", "taxi_duration", "train", "--engine", engine, "--search", args.search,
                    "--feature-set", args.feature_set, "--out", str(outcome_file), "--data", *map(str, data),
                ]  # fmt: skip
                env_args = {
                    "TAXI_DURATION_DATA_DIR": tmp,
                    "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
                    **master,
                }
                measured = run_measured(["env", *(f"{k}={v}" for k, v in env_args.items()), *cmd], beside=pids)
                ok = measured.returncode == 0
                outcome = json.loads(outcome_file.read_text()) if ok else {}
                spark_side = on_spark(events, measured.beside_cpu_s, measured.cpu_s) if spark and ok else {}
            trained = outcome.get("rows", {}).get("train", 0)
            fit_s = outcome.get("step_s", {}).get("train", float("nan"))
            row = {
                "engine": engine,
                "workers": workers,
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
                **spark_side,
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


def markdown(results: list[dict[str, Any]]) -> str:
    """The runs as a Markdown table: on a cluster, "job CPU" and "peak RSS" are the driver's, the executors'
    beside them."""
    lines = [
        "| engine | workers | pipeline | train rows | job wall | job CPU | train step | train rows/s | peak RSS | "
        "executor CPU | driver share | executor peak RSS | shuffle | val RMSE |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rmse = f"{r['validate_rmse']:.3f}" if r["validate_rmse"] else "-"
        executors = r.get("executor_peak_rss_mib") or {}
        lines.append(
            f"| {r['engine']} | {r['workers'] or 'local'} | {r['pipeline']} ({r['model']}) | {r['train_rows']:,} | "
            f"{r['wall_s']} s | {r['cpu_s']} s | {r['train_step_s']} s | {r['train_rows_per_s'] or '-':,} | "
            f"{r['peak_rss_mib']:,} MiB | {_or_dash(r.get('executor_cpu_s'), '{} s')} | "
            f"{_or_dash(r.get('driver_cpu_share'), '{:.0%}')} | "
            f"{' / '.join(f'{mib:,} MiB' for mib in executors.values()) or '-'} | "
            f"{_or_dash(r.get('shuffle_write_mib'), '{:,} MiB')} | {rmse} |"
        )
    return "\n".join(lines) + "\n"


def _or_dash(value: Any, form: str) -> str:
    return "-" if value is None else form.format(value)


if __name__ == "__main__":
    main()
