"""What the main job costs on each engine: `taxi-duration run` as the README's set-up runs it, embedded and Spark.

Run from the repository root:

    python benchmarks/main_job.py --out benchmarks/main_job.json

Each engine runs `taxi-duration run` (the main job: synthesize 300,000 trips if there are none, validate,
train, register) in a fresh process with a data folder of its own, on the same synthetic months (made once,
before either is timed), measured by `taxi_duration.ops.bench.measure`: wall time, CPU time (user+sys) and peak
RSS of the whole process tree, the JVM and its Python workers included. Both engines in one run, one after
the other, nothing else running.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from taxi_duration.core.months import parse_months
from taxi_duration.ingest.synth import generate
from taxi_duration.ops.bench.measure import run_measured

MONTHS = "2023-01..2023-03"  # the main job's months
ROWS = 300_000  # the main job's synthetic trips
ENGINES = ("duckdb", "spark")


def main() -> None:
    """Time the main job on each engine and write the results (JSON) and a table (stdout)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/main_job.json"))
    parser.add_argument("--spark-master", default="local[*]", help="the Spark side's master (default: local[*])")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="main-job-bench-"))
    try:
        trips = work / "trips"
        generate(ROWS, parse_months(MONTHS), trips, seed=0)
        results = []
        for engine in ENGINES:
            data = work / engine
            command = [sys.executable, "-m", "taxi_duration", "run", "--data", str(trips), "--engine", engine]
            environment = ["env", f"TAXI_DURATION_DATA_DIR={data}", f"TAXI_DURATION_SPARK_MASTER={args.spark_master}"]
            m = run_measured([*environment, *command])
            result = {
                "engine": engine,
                "rows": ROWS,
                "wall_s": round(m.wall_s, 1),
                "cpu_s": round(m.cpu_s, 1),
                "peak_rss_mib": round(m.peak_rss_bytes / 2**20),
                "ok": m.returncode == 0,
            }
            results.append(result)
            print(
                f"{engine:7} {m.wall_s:7.1f} s wall {m.cpu_s:7.1f} s CPU {m.peak_rss_bytes / 2**20:7,.0f} MiB peak  "
                f"{'ok' if m.returncode == 0 else 'FAILED: ' + m.stderr_tail}",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| engine | trips | wall s | CPU s | peak RSS MiB |\n|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['engine']} | {r['rows']:,} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mib']:,} |")


if __name__ == "__main__":
    main()
