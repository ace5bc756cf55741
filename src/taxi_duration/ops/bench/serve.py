"""`taxi-duration bench serve`: our API against `mlflow models serve`, same model, same load, same run.

1. In process: one trip through the scorer's whole road (request rules, features, model, interval), per
   call, and the model's own share of it.
2. Over loopback HTTP: each server runs in its own process (one worker each, as `mlflow models serve`
   defaults to); `wrk`, a C load generator, runs in another with a fixed number of connections, cycling
   through distinct real-looking trips, for `duration` seconds per endpoint after a warm-up. One trip per
   request (`/predict` against MLflow's `/invocations`), then batches (`/predict/batch`, rows/s).
3. Worst case, our server only: batches of `MAX_BATCH` trips that miss every cache the server has (pickups
   at any hour of any day from 2009 to next year, distances to the thousandth of a mile, rare vendors, trips
   inside the feature store's window) under load, while a client calls `/health` one call after another:
   its p99 says whether a heavy batch holds up the other clients.
4. Optionally a soak: `/predict` under load for `soak_s` seconds, the server's RSS sampled throughout.

Written by hand because the comparison itself is the product: no tool starts both servers on one model.
This module owns the trips, the servers and the results; `load.py` drives wrk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from taxi_duration.core import schema as s
from taxi_duration.core.config import Settings
from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import Month
from taxi_duration.ingest.synth import DirtyShares, generate
from taxi_duration.ingest.validation import FIRST_DAY, booking_window
from taxi_duration.ops.bench import load as wrk_load
from taxi_duration.serve.api import MAX_BATCH
from taxi_duration.serve.holder import load, wait_ready
from taxi_duration.serve.scorer import Scorer

OURS, MLFLOW = "taxi-duration", "mlflow models serve"


@dataclass(frozen=True)
class Row:
    """One server on one endpoint under load, as `results.json` lists it."""

    server: str
    endpoint: str
    rps: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    rss_mib: float


def trips(month: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` clean synthetic trips picked up in `month`, as API clients send them (canonical names)."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(n * 2, [Month.parse(month)], Path(tmp), seed=seed, dirty=DirtyShares.clean())
        frame = pd.read_parquet(next(Path(tmp).glob("*.parquet")))
    frame = frame[(frame["trip_distance"] > 0) & (frame["trip_distance"] <= 100)].head(n)
    return [
        {
            s.PICKUP: pickup.isoformat(timespec="seconds"),
            s.PU_ZONE: int(pu),
            s.DO_ZONE: int(do),
            s.PASSENGERS: None if pd.isna(passengers) else int(passengers),
            s.DISTANCE: round(float(distance), 2),
        }
        for pickup, pu, do, passengers, distance in zip(
            frame["lpep_pickup_datetime"],
            frame["PULocationID"],
            frame["DOLocationID"],
            frame["passenger_count"],
            frame["trip_distance"],
            strict=True,
        )
    ]


def worst_case_trips(n: int, seed: int, window: tuple[datetime, datetime]) -> list[dict[str, Any]]:
    """`n` trips a server has never seen: pickups at any second from 2009 to next year (one in ten inside the
    store's `window`, which take the full feature path), distances to the thousandth of a mile, any vendor."""
    rng = np.random.default_rng(seed)
    first = datetime.combine(FIRST_DAY, datetime.min.time())
    span = (datetime.combine(booking_window().last, datetime.min.time()) - timedelta(days=1) - first).total_seconds()
    inside = (window[1] - window[0]).total_seconds()
    pickups = [
        window[0] + timedelta(seconds=float(rng.uniform(0, inside)))
        if i % 10 == 0
        else first + timedelta(seconds=float(rng.uniform(0, span)))
        for i in range(n)
    ]
    return [
        {
            s.PICKUP: pickup.isoformat(timespec="seconds"),
            s.PU_ZONE: int(rng.integers(1, 264)),
            s.DO_ZONE: int(rng.integers(1, 264)),
            s.PASSENGERS: int(rng.integers(0, 10)),
            s.DISTANCE: round(float(rng.uniform(0.1, 40)), 3),
            s.VENDOR: int(rng.integers(0, 100)),
        }
        for pickup in pickups
    ]


def in_process(scorer: Scorer, requests: list[dict[str, Any]], calls: int) -> dict[str, float]:
    """Per-call time of one trip through `Scorer.score` (what the API runs), the model's own share of it, and
    batch throughput, inside one process."""
    canonical = [{**t, s.PICKUP: datetime.fromisoformat(t[s.PICKUP]), s.VENDOR: None} for t in requests]
    for trip in canonical:  # first sight of each hour and distance: not what a steady server pays
        scorer.score([trip])
    times, model_times = np.empty(calls), np.empty(calls)
    native, fast = scorer.bundle.native, scorer.bundle.fast
    for i in range(calls):
        trip = canonical[i % len(canonical)]
        start = time.perf_counter_ns()
        scorer.score([trip], remembered_only=True)
        times[i] = time.perf_counter_ns() - start
        features = fast.one(trip)
        start = time.perf_counter_ns()
        native.predict_one(features)
        model_times[i] = time.perf_counter_ns() - start
    began = time.perf_counter()
    scorer.score(canonical)
    batch_s = time.perf_counter() - began
    return {
        "calls": calls,
        "p50_us": float(np.percentile(times, 50) / 1e3),
        "p99_us": float(np.percentile(times, 99) / 1e3),
        "mean_us": float(times.mean() / 1e3),
        "model_p50_us": float(np.percentile(model_times, 50) / 1e3),
        "batch_rows": len(canonical),
        "batch_rows_per_s": len(canonical) / batch_s,
    }


@contextmanager
def _server(command: list[str], url: str, ready: str, env: dict[str, str]) -> Iterator[psutil.Process]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        try:
            wait_ready(url, timeout_s=180, path=ready, alive=lambda: process.poll() is None)
        except TimeoutError:
            raise UsageError(f"{' '.join(command[:3])} did not start (exit {process.poll()})") from None
        yield psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass(frozen=True)
class Target:
    """One server under test: how it is started and what each endpoint's request body looks like."""

    name: str
    command: list[str]
    ready: str
    single: str
    batch: str
    body: Callable[[list[dict[str, Any]]], dict[str, Any]]  # trips -> the request body
    batch_body: Callable[[list[dict[str, Any]]], dict[str, Any]]


def targets(model_uri: str, port: int) -> list[Target]:
    """Our server and MLflow's, on the same pinned model version."""
    cli = str(Path(sys.executable).with_name("taxi-duration"))
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    ours = [cli, "serve", "--model", model_uri, "--port", str(port), "--poll-seconds", "0"]
    theirs = [mlflow, "models", "serve", "-m", model_uri, "-p", str(port + 1), "--env-manager", "local"]
    return [
        Target(OURS, ours, "/ready", "/predict", "/predict/batch", lambda t: t[0], lambda t: {"trips": t}),
        Target(
            MLFLOW,
            theirs,
            "/ping",
            "/invocations",
            "/invocations",
            lambda t: {"dataframe_records": t},
            lambda t: {"dataframe_records": t},
        ),
    ]


@dataclass(frozen=True)
class _Load:
    """What each server is put through: the trips, the load's length and connections, the batches, the soak."""

    requests: list[dict[str, Any]]
    work: Path
    duration: float
    connections: int
    batch_size: int
    soak_s: float
    on_step: Callable[[str], None]


def run(
    settings: Settings,
    model_uri: str,
    out: Path,
    duration: float = 60.0,
    connections: int = 8,
    batch_size: int = 100,
    soak_s: float = 0.0,
    port: int = 8710,
    on_step: Callable[[str], None] = lambda step: None,
) -> dict[str, Any]:
    """Measure everything, write `out/results.json` and `out/results.md`, and return the results."""
    work = Path(tempfile.mkdtemp(prefix="bench-serve-", dir=settings.scratch_dir()))
    try:
        on_step("loading the model in process")
        served = load(settings, model_uri, work)
        pinned = served.uri
        requests = trips(served.bundle.meta.validate_month, 2_000)
        if s.DISTANCE not in served.bundle.native.inputs:
            requests = [{k: v for k, v in t.items() if k != s.DISTANCE} for t in requests]
        on_step("timing features + model in process")
        local = in_process(served, requests, calls=20_000)
        plan = _Load(requests, work, duration, connections, batch_size, soak_s, on_step)
        env = _env(settings)
        rows: list[Row] = []
        soak: dict[str, Any] | None = None
        worst: dict[str, Any] | None = None
        for i, target in enumerate(targets(pinned, port)):
            measured, target_worst, target_soak = _bench(plan, target, i, port + i, env, served)
            rows += measured
            worst, soak = target_worst or worst, target_soak or soak  # only ours has them
        results = {
            "model": pinned,
            "model_kind": served.bundle.native.source,
            "feature_set": served.bundle.meta.feature_set,
            "duration_s": duration,
            "connections": connections,
            "batch_size": batch_size,
            "cpus": os.cpu_count(),
            "in_process": local,
            "rows": [asdict(r) for r in rows],
            "worst_case": worst,
            "soak": soak,
        }
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "results.md").write_text(markdown(results))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _env(settings: Settings) -> dict[str, str]:
    """The servers' environment: the project's MLflow store and data dir."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": str(settings.mlflow_tracking_uri)}
    env["TAXI_DURATION_DATA_DIR"] = str(settings.data_dir)
    # `mlflow models serve` starts uvicorn by name: this interpreter's scripts must be on its PATH even
    # when the virtualenv is not activated.
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return env


def _bench(
    plan: _Load, target: Target, index: int, port: int, env: dict[str, str], served: Scorer
) -> tuple[list[Row], dict[str, Any] | None, dict[str, Any] | None]:
    """One server: start it, load each endpoint (one trip, then batches), then for ours the worst case and, when
    asked, the soak. Returns its rows, its worst case and its soak (None for MLflow's)."""
    single, batch = plan.work / f"single-{index}.jsonl", plan.work / f"batch-{index}.jsonl"
    single.write_text("".join(json.dumps(target.body([t])) + "\n" for t in plan.requests))
    chunks = [plan.requests[j : j + plan.batch_size] for j in range(0, len(plan.requests), plan.batch_size)]
    batch.write_text("".join(json.dumps(target.batch_body(c)) + "\n" for c in chunks))
    url = f"http://127.0.0.1:{port}"
    plan.on_step(f"starting {target.name}")
    worst = soak = None
    with _server(target.command, url, target.ready, env) as process:
        rows = [
            _endpoint(plan, target.name, url, endpoint, bodies, per_request, process)
            for endpoint, bodies, per_request in ((target.single, single, 1), (target.batch, batch, plan.batch_size))
        ]
        if target.name == OURS:
            plan.on_step(f"worst case: {plan.duration:.0f} s of never-seen batches, /health timed")
            worst = _worst_case(url, plan, served)
        if plan.soak_s > 0 and target.name == OURS:
            plan.on_step(f"soak: {plan.soak_s:.0f} s of /predict")
            soak = wrk_load.soak(process, url, target.single, single, plan.soak_s, plan.connections)
    return rows, worst, soak


def _endpoint(
    plan: _Load, server: str, url: str, endpoint: str, bodies: Path, per_request: int, process: psutil.Process
) -> Row:
    """One endpoint of a running server: a warm-up, then `plan.duration` seconds under load."""
    label = f"{endpoint} ({per_request} trip{'s' if per_request > 1 else ''})"
    plan.on_step(f"{server} {label}: warm-up")
    wrk_load.wrk(url, endpoint, bodies, min(10.0, plan.duration), plan.connections)
    plan.on_step(f"{server} {label}: {plan.duration:.0f} s under load")
    result = wrk_load.wrk(url, endpoint, bodies, plan.duration, plan.connections)
    seconds = result["duration_us"] / 1e6
    rps = result["requests"] / seconds
    return Row(
        server=server,
        endpoint=label,
        rps=round(rps, 1),
        rows_per_s=round(rps * per_request, 1),
        p50_ms=result["p50_us"] / 1e3,
        p99_ms=result["p99_us"] / 1e3,
        errors=result["socket_errors"] + result["bad_status"],
        requests=result["requests"],
        rss_mib=round(process.memory_info().rss / 2**20, 1),
    )


def _worst_case(url: str, plan: _Load, served: Scorer) -> dict[str, Any]:
    """Never-seen batches of `MAX_BATCH` trips under load while one client calls `/health` back to back."""
    bodies = plan.work / "worst-case.jsonl"
    window = served.bundle.store.window
    with bodies.open("w") as out:
        for seed in range(100):  # 100,000 distinct trips: wrk cycles through them
            out.write(json.dumps({"trips": worst_case_trips(MAX_BATCH, seed, window)}) + "\n")
    return wrk_load.worst_case(url, bodies, MAX_BATCH, plan.duration, plan.connections)


def markdown(results: dict[str, Any]) -> str:
    """The results as the Markdown tables `benchmarks/README.md` shows."""
    local = results["in_process"]
    lines = [
        f"Model {results['model']} ({results['model_kind']}, {results['feature_set']}); "
        f"{results['connections']} connections, {results['duration_s']:.0f} s per row, {results['cpus']} CPUs.",
        "",
        f"In process, one trip through the scorer: p50 {local['p50_us']:.0f} µs, p99 {local['p99_us']:.0f} µs, of "
        f"which the model {local.get('model_p50_us', float('nan')):.0f} µs "
        f"({local['calls']:,} calls); a batch of {local['batch_rows']:,} trips: "
        f"{local['batch_rows_per_s']:,.0f} trips/s.",
        "",
        "| server | endpoint | requests/s | trips/s | p50 ms | p99 ms | errors | server RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['server']} | {r['endpoint']} | {r['rps']:,.0f} | {r['rows_per_s']:,.0f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['errors']} | {r['rss_mib']:.0f} |"
        )
    by = {(r["server"], r["endpoint"].split(" ")[1]): r for r in results["rows"]}
    for size in ("(1", f"({results['batch_size']}"):
        ours, theirs = by.get((OURS, size)), by.get((MLFLOW, size))
        if ours and theirs and theirs["rps"] > 0:  # a very short run may complete no request at all
            lines.append("")
            lines.append(
                f"{'One trip' if size == '(1' else 'Batches'}: {ours['rps'] / theirs['rps']:.1f}x the requests/s of "
                f"`mlflow models serve`, p99 {ours['p99_ms']:.2f} ms against {theirs['p99_ms']:.2f} ms."
            )
    if results.get("worst_case"):
        worst = results["worst_case"]
        lines += [
            "",
            f"Worst case: {worst['seconds']:.0f} s of never-seen batches of {worst['batch_trips']:,} trips "
            f"({worst['batches']:,} batches, p50 {worst['batch_p50_ms']:.0f} ms, p99 {worst['batch_p99_ms']:.0f} ms, "
            f"{worst['errors']} errors); meanwhile /health answered {worst['health_calls']:,} calls, "
            f"p50 {worst['health_p50_ms']} ms, p99 {worst['health_p99_ms']} ms, max {worst['health_max_ms']} ms.",
        ]
    if results.get("soak"):
        soak = results["soak"]
        lines += [
            "",
            f"Soak: {soak['seconds']:.0f} s of /predict, {soak['requests']:,} requests, {soak['errors']} errors; "
            f"server RSS {soak['rss_start_mib']:.0f} MiB at the start, {soak['rss_after_30s_mib']:.0f} MiB after 30 s, "
            f"{soak['rss_end_mib']:.0f} MiB at the end (max {soak['rss_max_mib']:.0f}).",
        ]
    return "\n".join(lines) + "\n"
