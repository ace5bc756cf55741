"""Benchmark the Spark jobs on a real standalone cluster: one worker against two, as the rows grow.

Run from the repository root:

    python benchmarks/scaling.py --rows 1M --rows 10M --workers 1 --workers 2 --out benchmarks/scaling.json

For each size and worker count, a fresh cluster (`taxi_duration.ops.cluster.up`: a master and N worker JVMs of
`--cores-per-worker` cores and `--memory-per-worker` each) runs, as separate `taxi-duration` processes:
- `validate --features --engine spark` on three synthetic months of `--rows` trips (the feature job);
- `train --engine spark --search quick` on the same months (the first trains, the second validates, the
  third tests), with `--jobs train`.
Every process logs Spark's events (`bench.stages`); per run the table reports wall time, the driver's CPU
time and peak RSS (its process tree), the executors' task time and CPU from the event log, and the bytes
read, shuffled and spilled. Per-stage figures go to the JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from taxi_duration.ingest.synth import parse_rows
from taxi_duration.ops import cluster
from taxi_duration.ops.bench import stages
from taxi_duration.ops.bench.engines import synthetic
from taxi_duration.ops.bench.measure import run_measured

GIB = 2**30


def job_command(job: str, data: Path, out: Path, search: str = "quick") -> list[str]:
    """The `taxi-duration` command of one job on the Spark engine."""
    base = [sys.executable, "-m", "taxi_duration"]
    if job == "validate":
        return [*base, "validate", str(data), "--out", str(out), "--features", "--engine", "spark"]
    if job == "train":
        return [*base, "train", "--data", str(data), "--engine", "spark", "--search", search, "--out", str(out)]
    raise SystemExit(f"unknown job {job!r}: validate or train")


def measure(job: str, data: Path, master: str, executor_memory: str, work: Path, search: str) -> dict[str, Any]:
    """One job as its own process against `master`, with its event log read back (and, for training, the
    job's own time of each step and its validation RMSE)."""
    events = work / "events"
    events.mkdir()
    env = {
        "TAXI_DURATION_SPARK_MASTER": master,
        "TAXI_DURATION_DATA_DIR": str(work),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db",
        "PYSPARK_SUBMIT_ARGS": f"--conf spark.executor.memory={executor_memory} "
        + stages.event_log_submit_args(events),
    }
    out = work / ("out.json" if job == "train" else "out")
    m = run_measured(["env", *(f"{k}={v}" for k, v in env.items()), *job_command(job, data, out, search)])
    found = stages.read(events) if m.returncode == 0 else []
    outcome = json.loads(out.read_text()) if job == "train" and m.returncode == 0 else {}
    return {
        "search": search if job == "train" else None,
        "step_s": outcome.get("step_s", {}),
        "validate_rmse": outcome["scores"]["validate"]["model"]["overall"]["all"]["rmse"] if outcome else None,
        "wall_s": round(m.wall_s, 1),
        "driver_cpu_s": round(m.cpu_s, 1),
        "driver_peak_rss_mib": round(m.peak_rss_bytes / 2**20),
        "ok": m.returncode == 0,
        "error": "" if m.returncode == 0 else m.stderr_tail[-500:],
        "totals": stages.totals(found),
        "by_step": {step or "(no step)": totals for step, totals in stages.by_step(found).items()},
        "step_cpu_s": outcome.get("step_cpu_s", {}),
        "stages": [vars(s) for s in found],
    }


def markdown(results: list[dict[str, Any]]) -> str:
    """The runs as a Markdown table."""
    lines = [
        "| job | rows | workers | wall s | train step s | driver CPU s | executor task s | executor CPU s | "
        "driver share of CPU | stages | tasks | input GiB | shuffle write GiB | spill GiB | ok |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        t = r["totals"]
        step = r.get("step_s", {}).get("train")
        total_cpu = r["driver_cpu_s"] + t.get("task_cpu_s", 0)
        lines.append(
            f"| {r['job']} | {r['rows']:,} | {r['workers']} | {r['wall_s']} | {step if step is not None else '-'} | "
            f"{r['driver_cpu_s']} | {t.get('task_run_s', 0):.0f} | {t.get('task_cpu_s', 0):.0f} | "
            f"{r['driver_cpu_s'] / total_cpu if total_cpu else 0:.0%} | {t.get('stages', 0)} | "
            f"{t.get('tasks', 0):,} | {t.get('input_bytes', 0) / GIB:.2f} | "
            f"{t.get('shuffle_write_bytes', 0) / GIB:.2f} | {t.get('spill_bytes', 0) / GIB:.2f} | "
            f"{'ok' if r['ok'] else 'failed'} |"
        )
    return "\n".join(lines) + "\n"


def step_markdown(results: list[dict[str, Any]]) -> str:
    """Each training run's steps: the job's own seconds and its process tree's CPU (the driver's; in local mode
    the executors' too), and the Spark jobs, stages, tasks and executor CPU of the step."""
    lines = [
        "| rows | workers | step | seconds | driver CPU s | jobs | stages | tasks | executor CPU s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for step, t in r.get("by_step", {}).items():
            lines.append(
                f"| {r['rows']:,} | {r['workers']} | {step} | {r['step_s'].get(step, '-')} | "
                f"{r['step_cpu_s'].get(step, '-')} | {t['jobs']} | {t['stages']} | {t['tasks']:,} | "
                f"{t['task_cpu_s']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", action="append", help="synthetic trips over three months (repeatable); 1M")
    parser.add_argument("--workers", action="append", type=int, help="workers per cluster (repeatable); 1, 2")
    parser.add_argument("--jobs", default="validate", help="comma-separated: validate, train")
    parser.add_argument("--search", default="quick", choices=["quick", "full"], help="the train job's search")
    parser.add_argument("--cores-per-worker", type=int, default=1)
    parser.add_argument("--memory-per-worker", default="4g")
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scaling.json"))
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the runs already in --out for other (job, rows, workers, search): a long table measured over "
        "several runs",
    )
    args = parser.parse_args()
    executor_memory = f"{int(args.memory_per_worker[:-1]) * 3 // 4}{args.memory_per_worker[-1]}"  # room for overhead

    kept = json.loads(args.out.read_text()) if args.merge and args.out.exists() else []
    results: list[dict[str, Any]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for rows in sorted(parse_rows(r) for r in args.rows or ["1M"]):
        data = synthetic(rows, args.data_dir)
        for workers in args.workers or [1, 2]:
            with tempfile.TemporaryDirectory(dir=args.data_dir) as state:
                up = cluster.up(Path(state), workers, args.cores_per_worker, args.memory_per_worker)
                try:
                    for job in args.jobs.split(","):
                        with tempfile.TemporaryDirectory(dir=args.data_dir) as work:
                            run = measure(job, data, up.master_url, executor_memory, Path(work), args.search)
                        row = {"job": job, "rows": rows, "workers": workers, **run}
                        print(json.dumps({k: v for k, v in row.items() if k != "stages"}), flush=True)
                        results.append(row)
                        _write(args.out, kept, results)  # a long run keeps what it has measured
                finally:
                    cluster.down(Path(state))
    print(markdown(results))
    if any(r["job"] == "train" for r in results):
        print(step_markdown([r for r in results if r["job"] == "train"]))


def _write(out: Path, kept: list[dict[str, Any]], results: list[dict[str, Any]]) -> None:
    """`results`, and the runs of `kept` they do not measure again, ordered by job, rows and workers."""
    key = ("job", "rows", "workers", "search")
    measured = {tuple(r.get(k) for k in key) for r in results}
    rows = [r for r in kept if tuple(r.get(k) for k in key) not in measured] + results
    rows.sort(key=lambda r: (r["job"] != "validate", r["rows"], r["workers"]))
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
