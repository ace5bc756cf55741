"""Benchmark `taxi-duration synth`: rows/s and peak memory, streamed in chunks vs built whole in memory.

Run from the repository root:

    python benchmarks/synth.py --rows 10M --rows 50M --whole-up-to 10M

Each size runs in a fresh process measured by `taxi_duration.ops.bench.measure` (wall time, peak RSS of the process
tree). The baseline "whole" builds every row in one chunk, as a naive generator would; it is run only up to
`--whole-up-to` rows, since beyond that it needs more memory than a laptop has.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from taxi_duration.ingest.synth import parse_rows
from taxi_duration.ops.bench.measure import run_measured

MONTHS = "2021-01"  # one month, one file: the baseline then holds every row at once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", action="append", default=None, help="sizes to run (repeatable); default 10M, 50M")
    parser.add_argument("--whole-up-to", default="10M", help="largest size for the in-memory baseline")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/synth.json"))
    args = parser.parse_args()
    sizes = [parse_rows(r) for r in args.rows or ["10M", "50M"]]
    whole_limit = parse_rows(args.whole_up_to)

    results = []
    for rows in sizes:
        modes = {"streamed (1M-row chunks)": 1_000_000}
        if rows <= whole_limit:
            modes["whole (one chunk, baseline)"] = rows
        for mode, chunk in modes.items():
            target = Path(tempfile.mkdtemp(prefix="synth-bench-"))
            cmd = [
                sys.executable,
                "-m",
                "taxi_duration",
                "synth",
                "--rows",
                str(rows),
                "--months",
                MONTHS,
                "--out",
                str(target / "out"),
                "--chunk-rows",
                str(chunk),
            ]
            m = run_measured(cmd)
            shutil.rmtree(target)
            ok = m.returncode == 0
            results.append(
                {
                    "mode": mode,
                    "rows": rows,
                    "wall_s": round(m.wall_s, 2),
                    "rows_per_s": round(rows / m.wall_s),
                    "peak_rss_bytes": m.peak_rss_bytes,
                    "ok": ok,
                }
            )
            print(
                f"{mode:28} {rows:>12,} rows  {m.wall_s:7.1f} s  {rows / m.wall_s:>12,.0f} rows/s  "
                f"peak {m.peak_rss_bytes / 2**20:8,.0f} MiB  {'ok' if ok else 'FAILED: ' + m.stderr_tail}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| mode | rows | wall s | rows/s | peak RSS MiB |\n|---|---:|---:|---:|---:|")
    for r in results:
        mib = r["peak_rss_bytes"] / 2**20
        print(f"| {r['mode']} | {r['rows']:,} | {r['wall_s']} | {r['rows_per_s']:,} | {mib:,.0f} |")


if __name__ == "__main__":
    main()
