"""Benchmark the stream: sustained events/s and latency from a file landing to its predictions written.

Run from the repository root, with a trained model in the store the settings name:

    python benchmarks/stream.py --events ../shared/data/green_tripdata_2023-02.parquet --out benchmarks/stream.json

For each trigger setting, a real `taxi-duration stream` process (its own JVM, local mode) reads a fresh
landing folder while this script lands event files there (`replay`'s JSON lines, written whole and
renamed) at a fixed rate. An event's latency is the time from its file's rename to the rename of the
predictions (or, for a refused event, quarantine) file that holds it. A burst run lands every event at
once and measures how fast the stream drains it. Beside them, the same events scored by the batch path
(`Scorer.score` on one Arrow table, in this process): the stream's rate over that one is the ratio
reported. CPU time (user+sys) and peak RSS cover the stream's process tree, the JVM included.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow.parquet as pq

from taxi_duration.core.atomic import atomic_file
from taxi_duration.core.config import load_settings
from taxi_duration.core.process import tree_cpu
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ops.bench.measure import tree_rss
from taxi_duration.serve.scorer import load
from taxi_duration.stream.events import TRIP_ID
from taxi_duration.stream.replay import event_table, lines
from taxi_duration.stream.writers import PREDICTIONS, QUARANTINE

ROWS_PER_FILE = 500
QUIET_S = 15.0


def land(folder: Path, chunks: list[Any], rate: float | None, first: int = 0) -> dict[str, float]:
    """Land each chunk as one file, `rate` events/s (None: all at once); trip_id -> its file's landing time."""
    landed: dict[str, float] = {}
    began = time.monotonic()
    sent = 0
    for n, chunk in enumerate(chunks):
        if rate is not None:
            delay = began + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        with atomic_file(folder / f"events-{first + n:06d}.jsonl") as tmp:
            tmp.write_text("".join(lines(chunk)))
        when = time.time()
        landed.update(dict.fromkeys(chunk.column(TRIP_ID).to_pylist(), when))
        sent += chunk.num_rows
    return landed


def written(output: Path) -> dict[str, float]:
    """trip_id -> when the predictions (or quarantine) file holding it was renamed into place."""
    out: dict[str, float] = {}
    for path in [*(output / PREDICTIONS).glob("batch-*.parquet"), *(output / QUARANTINE).glob("batch-*.parquet")]:
        when = path.stat().st_mtime
        out.update(dict.fromkeys(pq.read_table(path, columns=[TRIP_ID]).column(TRIP_ID).to_pylist(), when))
    return out


def run_stream(model: str, chunks: list[Any], trigger_s: float, rate: float | None, timeout_s: float) -> dict[str, Any]:
    """One stream process over one landing folder; the events land while it runs."""
    work = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    landing, output, checkpoint = work / "landing", work / "output", work / "checkpoint"
    landing.mkdir()
    warm, rest = chunks[0], chunks[1:]
    land(landing, [warm], None)  # the first batch starts the JVM's code paths; not measured
    command = [str(Path(sys.executable).with_name("taxi-duration")), "stream", "--input", str(landing)]
    command += ["--output", str(output), "--checkpoint", str(checkpoint), "--model", model]
    command += ["--trigger-seconds", str(trigger_s), "--max-files-per-trigger", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tree = psutil.Process(process.pid)
    peak, cpu = 0, 0.0
    try:
        warm_ids = set(warm.column(TRIP_ID).to_pylist())
        deadline = time.monotonic() + timeout_s
        while not warm_ids <= set(written(output)):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stream did not start (exit {process.poll()})")
            time.sleep(0.2)
        landed = land(landing, rest, rate, first=1)
        seen, still = 0, time.monotonic()
        # Until every event is written, or nothing new for QUIET_S (an event the watermark drops is never).
        while len(done := written(output)) < len(landed) + len(warm_ids) and time.monotonic() - still < QUIET_S:
            peak = max(peak, tree_rss(tree))
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the stream stopped or timed out with {len(done):,} of {len(landed):,} events")
            if len(done) > seen:
                seen, still = len(done), time.monotonic()
            time.sleep(0.2)
        cpu = tree_cpu(tree)
    finally:
        process.terminate()
        process.wait(timeout=60)
    latency = np.array([done[t] - landed[t] for t in landed if t in done])
    span = max(done[t] for t in landed if t in done) - min(landed.values())
    return {
        "trigger_s": trigger_s,
        "rate": rate,
        "events": len(landed),
        "events_written": int(latency.size),
        "events_per_s": latency.size / span,
        "latency_p50_s": float(np.percentile(latency, 50)),
        "latency_p99_s": float(np.percentile(latency, 99)),
        "cpu_s": cpu,
        "peak_rss_mib": peak / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", required=True, help="Trip files the events come from.")
    parser.add_argument("--model", default="models:/taxi-duration@champion")
    parser.add_argument("--count", type=int, default=40_000, help="Events per run.")
    parser.add_argument("--rate", type=float, default=1_000.0, help="Events/s landed in the latency runs.")
    parser.add_argument("--triggers", default="1,5", help="Trigger settings (seconds), comma-separated.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/stream.json"))
    args = parser.parse_args()
    settings = load_settings()
    events = event_table(settings, check_all(discover([args.events]))).slice(0, args.count + ROWS_PER_FILE)
    chunks = [events.slice(i, ROWS_PER_FILE) for i in range(0, events.num_rows, ROWS_PER_FILE)]
    scorer = load(settings, args.model, Path(tempfile.mkdtemp()))
    batch = events.slice(ROWS_PER_FILE)
    trips = batch.drop_columns([TRIP_ID])
    scorer.score(trips.slice(0, 1_000))  # warm-up
    began, cpu0 = time.perf_counter(), time.process_time()
    scorer.score(trips)
    batch_s, batch_cpu = time.perf_counter() - began, time.process_time() - cpu0
    results: dict[str, Any] = {
        "events_file": args.events,
        "batch_path": {"events": batch.num_rows, "events_per_s": batch.num_rows / batch_s, "cpu_s": batch_cpu},
        "runs": [],
    }
    for trigger in (float(t) for t in args.triggers.split(",")):
        results["runs"].append(run_stream(args.model, chunks, trigger, args.rate, timeout_s=300))
        print(json.dumps(results["runs"][-1]), flush=True)
    results["runs"].append(run_stream(args.model, chunks, float(args.triggers.split(",")[0]), None, timeout_s=300))
    print(json.dumps(results["runs"][-1]), flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["batch_path"]))


if __name__ == "__main__":
    main()
