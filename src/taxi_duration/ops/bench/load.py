"""wrk, the C load generator `bench serve` drives (one endpoint, a fixed number of connections, request bodies
cycled from a file), and the two runs that watch something else meanwhile: the worst case (`/health` timed
during heavy batches) and the soak (the server's memory sampled)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from taxi_duration.core.errors import UsageError

# wrk's own default (2 s) counts a slower answer as a socket error and drops its latency: a queue of never-seen
# 1,000-trip batches, or MLflow under load, would read as failures instead of as the latency they are.
REQUEST_TIMEOUT_S = 30
# `done` prints wrk's own exact counts and percentiles as one JSON line (its text summary rounds them).
WRK_SCRIPT = """
local bodies, i = {}, 0
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local headers = {["Content-Type"] = "application/json"}
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", os.getenv("ENDPOINT"), headers, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "bad_status": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@contextmanager
def running(url: str, endpoint: str, bodies: Path, seconds: float, connections: int) -> Iterator[subprocess.Popen[str]]:
    """wrk running against one endpoint, cycling through the request bodies in `bodies` (one per line)."""
    if shutil.which("wrk") is None:
        raise UsageError("`bench serve` needs wrk, the HTTP load generator: apt-get install wrk (or brew install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        env = {**os.environ, "BODIES": str(bodies), "ENDPOINT": endpoint}
        duration, timeout = f"-d{max(1, round(seconds))}s", f"--timeout={REQUEST_TIMEOUT_S}s"
        command = ["wrk", "-t1", f"-c{connections}", duration, timeout, "-s", script.name, url]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()


def summary(process: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait for a wrk run to end; its JSON summary (a UsageError with its message if it failed)."""
    out, err = process.communicate()
    if process.returncode != 0:
        raise UsageError(f"wrk failed: {err.strip()}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def wrk(url: str, endpoint: str, bodies: Path, seconds: float, connections: int) -> dict[str, Any]:
    """Run wrk against one endpoint; its JSON summary."""
    with running(url, endpoint, bodies, seconds, connections) as process:
        return summary(process)


def worst_case(url: str, bodies: Path, batch_trips: int, seconds: float, connections: int) -> dict[str, Any]:
    """Batches of `batch_trips` trips (`bodies`, one request a line) under load on `/predict/batch`, while one
    client calls `/health` back to back: its latency says whether a heavy batch holds up the other clients."""
    health: list[float] = []
    with running(url, "/predict/batch", bodies, seconds, connections) as load:

        def probe() -> None:
            with httpx.Client(timeout=60) as client:
                while load.poll() is None:
                    start = time.perf_counter()
                    client.get(f"{url}/health")
                    health.append(time.perf_counter() - start)

        prober = threading.Thread(target=probe)
        prober.start()
        measured = summary(load)
        prober.join()
    ms = np.array(health) * 1e3
    return {
        "seconds": seconds,
        "batch_trips": batch_trips,
        "batches": measured["requests"],
        "batch_p50_ms": measured["p50_us"] / 1e3,
        "batch_p99_ms": measured["p99_us"] / 1e3,
        "errors": measured["socket_errors"] + measured["bad_status"],
        "health_calls": len(ms),
        "health_p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
        "health_p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
        "health_max_ms": round(float(ms.max()), 2) if len(ms) else None,
    }


def soak(process: psutil.Process, url: str, endpoint: str, bodies: Path, seconds: float, connections: int) -> dict:
    """`/predict` under load for `seconds`, the server's RSS sampled every five seconds."""
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    with running(url, endpoint, bodies, seconds, connections) as load:
        while load.poll() is None:
            samples.append((time.monotonic() - started, process.memory_info().rss / 2**20))
            time.sleep(5)
        measured = summary(load)
    warm = [rss for t, rss in samples if t >= 30] or [rss for _, rss in samples]
    return {
        "seconds": seconds,
        "requests": measured["requests"],
        "errors": measured["socket_errors"] + measured["bad_status"],
        "rss_start_mib": round(samples[0][1], 1),
        "rss_after_30s_mib": round(warm[0], 1),
        "rss_end_mib": round(samples[-1][1], 1),
        "rss_max_mib": round(max(r for _, r in samples), 1),
        "samples": [(round(t, 1), round(r, 1)) for t, r in samples],
    }
