"""Benchmark the dashboard's travel-time map: the first load, then each change of pickup zone, weekday or hour.

Run from the repository root, with a champion in the store the settings name (`make run` makes one):

    python benchmarks/dashboard_map.py --out benchmarks/dashboard_map.json

In this process, the page's own work: the first load (zone shapes to GeoJSON, the champion loaded, a first
map), then for random selections the scorer's call for all 263 zones and the figure as plotly's JSON (what
Streamlit sends). With Debian's Chromium present, in a browser too: a real `taxi-duration dashboard`, the
map page opened (until all 263 zones are drawn), then the hour slider moved one step at a time, each timed
from the key press until the map shows the new hour (the page's whole rerun, the transfer, plotly's redraw).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from taxi_duration.core.config import load_settings
from taxi_duration.core.process import tree_cpu
from taxi_duration.monitor.dashboard import sources
from taxi_duration.monitor.dashboard import travel_times as tt
from taxi_duration.monitor.dashboard.launch import environment
from taxi_duration.ops.bench.measure import tree_rss
from taxi_duration.serve.holder import wait_ready
from taxi_duration.serve.scorer import load


def summary(seconds: list[float]) -> dict[str, float]:
    """Median, 95th percentile and worst, in milliseconds."""
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.median(ms)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


def in_process(repeat: int) -> dict[str, Any]:
    settings = load_settings()
    champion = sources.champion(settings)
    if isinstance(champion, sources.Missing):
        sys.exit(f"{champion.what}: {champion.command}")
    started = time.perf_counter()
    tt.geojson()
    shapes_s = time.perf_counter() - started
    scorer = load(settings, f"models:/taxi-duration/{champion.version}", settings.scratch_dir())
    loaded_s = time.perf_counter() - started
    first = tt.minutes_from(scorer, 161, tt.pickup_time(champion.validate_month, 0, 8))
    tt.figure(first, 161, "first").to_json()
    first_s = time.perf_counter() - started
    rng = random.Random(0)
    scoring, drawing, sizes = [], [], []
    cpu_before = time.process_time()
    for _ in range(repeat):
        zone, weekday, hour = rng.choice(tt.zone_ids()), rng.randrange(7), rng.randrange(24)
        t0 = time.perf_counter()
        minutes = tt.minutes_from(scorer, zone, tt.pickup_time(champion.validate_month, weekday, hour))
        t1 = time.perf_counter()
        sizes.append(len(tt.figure(minutes, zone, f"{zone} {weekday} {hour}").to_json()))
        scoring.append(t1 - t0)
        drawing.append(time.perf_counter() - t1)
    cpu_ms = (time.process_time() - cpu_before) * 1000 / repeat
    return {
        "champion": champion.version,
        "feature_set": champion.feature_set,
        "first_load_s": {
            "shapes": round(shapes_s, 2),
            "shapes_and_model": round(loaded_s, 2),
            "first_map": round(first_s, 2),
        },
        "selections": repeat,
        "score_263_zones": summary(scoring),
        "figure_json": summary(drawing),
        "page_work": summary([a + b for a, b in zip(scoring, drawing, strict=True)]),
        "figure_json_kb": round(float(np.median(sizes)) / 1024, 1),
        "page_work_cpu_ms_mean": round(cpu_ms, 1),
        "peak_rss_mib": round(tree_rss(psutil.Process()) / 2**20),
    }


def in_browser(chromium: str, repeat: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [str(Path(sys.executable).with_name("taxi-duration")), "dashboard", "--port", str(port)]
    env = {**os.environ, **environment(load_settings())}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout_s=120, path="/_stcore/health", alive=lambda: process.poll() is None)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            started = time.perf_counter()
            page.goto(f"{url}/travel_map")
            page.locator("path.choroplethlocation >> nth=262").wait_for(state="attached", timeout=120_000)
            first_s = time.perf_counter() - started
            slider = page.get_by_role("slider")
            redraws = []
            server = psutil.Process(process.pid)
            cpu_before = tree_cpu(server), tree_cpu()
            for step in range(repeat):
                hour = (8 + step + 1) % 24
                slider.focus()
                t0 = time.perf_counter()
                page.keyboard.press("ArrowRight" if hour else "Home")
                page.locator(".gtitle", has_text=f" {hour}:00").wait_for(timeout=60_000)
                page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=60_000)
                redraws.append(time.perf_counter() - t0)
            # The dashboard's process tree; and this process with its children (Playwright's driver, Chromium).
            server_cpu, browser_cpu = tree_cpu(server) - cpu_before[0], tree_cpu() - cpu_before[1]
            rss = tree_rss(server), tree_rss(psutil.Process())
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "first_map_s": round(first_s, 2),
        "hour_changes": repeat,
        "redraw": summary(redraws),
        "cpu_ms_per_redraw": {
            "dashboard": round(server_cpu * 1000 / repeat),
            "browser": round(browser_cpu * 1000 / repeat),
        },
        "rss_mib_after": {"dashboard": round(rss[0] / 2**20), "browser": round(rss[1] / 2**20)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30, help="selections timed in process")
    parser.add_argument("--browser-repeat", type=int, default=15, help="hour changes timed in the browser")
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "load_average_before": [round(x, 1) for x in os.getloadavg()],
        "in_process": in_process(args.repeat),
    }
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    results["browser"] = in_browser(chromium, args.browser_repeat) if chromium else "skipped: no Chromium"
    results["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
