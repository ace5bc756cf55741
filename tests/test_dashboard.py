"""The dashboard: every page with Streamlit's AppTest against a real trained store and real reports, every absent
source, and one real browser (Debian's Chromium, driven by Playwright) against a `taxi-duration dashboard`."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow import MlflowClient
from prometheus_client import start_http_server

from taxi_duration.core import schema as s
from taxi_duration.core.config import CHAMPION, DEFAULT_MODEL, MODEL_NAME, Engine, Settings
from taxi_duration.engines.frames import Runtime
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ingest.quality import validate
from taxi_duration.monitor import drift_report
from taxi_duration.monitor.dashboard import PAGES, sources, travel_times
from taxi_duration.monitor.dashboard.launch import APP, environment
from taxi_duration.monitor.drift import compare
from taxi_duration.serve.api.edge import Metrics
from taxi_duration.serve.holder import wait_ready
from taxi_duration.serve.scorer import load
from taxi_duration.stream.writers import PREDICTIONS
from taxi_duration.stream.writers import QUARANTINE as STREAM_QUARANTINE

AppTest = pytest.importorskip("streamlit.testing.v1", reason="the dashboard extra is not installed").AppTest
MONTHS = ("2023-01", "2023-02", "2023-03")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The page has drawn its last run: no element left from the run before, no placeholder of one still coming.
SETTLED = '() => !document.querySelector(\'[data-stale="true"], [data-testid="stSkeleton"]\')'
SCREENSHOTS_ENV = "TAXI_DURATION_TEST_SCREENSHOTS"  # a folder to keep the browser test's screenshots in


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def reports(registry: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `validate` report of the three months and a `drift` output (the test month against the training
    month), as the commands write them."""
    root = tmp_path_factory.mktemp("reports")
    files = {
        month: check_all(discover([registry.data_dir / "raw" / f"green_tripdata_{month}.parquet"])) for month in MONTHS
    }
    runtime = Runtime.open(registry, Engine.DUCKDB)
    try:
        validate(runtime, [f for month in MONTHS for f in files[month]], root / "quality")
    finally:
        runtime.close()
    drift_report.write(compare(registry, files[MONTHS[0]], files[MONTHS[2]], None), root / "drift" / MONTHS[2])
    return root


@pytest.fixture
def closed_port() -> int:
    return free_port()  # nothing listens on it once the socket is closed


def use(monkeypatch: pytest.MonkeyPatch, settings: Settings, **changes: object) -> Settings:
    """Give the app these settings as `taxi-duration dashboard` does: through the environment."""
    changed = settings.model_copy(update=changes)
    for name, value in environment(changed).items():
        monkeypatch.setenv(name, value)
    return changed


@pytest.fixture
def dashboard(registry: Settings, reports: Path, closed_port: int, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The real store and reports; no server listening at the metrics URL, no stream output."""
    return use(
        monkeypatch,
        registry,
        dashboard_reports=reports,
        dashboard_metrics_url=f"http://127.0.0.1:{closed_port}/metrics",
    )


def open_page(path: str) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    if path != PAGES[0][0]:
        app.switch_page(path)
        app.run()
    assert not app.exception, [e.message for e in app.exception]
    return app


def shown(app: AppTest) -> str:
    """Every text the page shows, one element a line."""
    kinds = ("title", "header", "subheader", "markdown", "caption", "warning", "success", "error", "info", "code")
    texts = [str(e.value) for kind in kinds for e in getattr(app, kind)]
    return "\n".join([*texts, *(f"{m.label}: {m.value}" for m in app.metric)])


@pytest.mark.parametrize("path", [p for p, _ in PAGES])
def test_every_page_renders_and_names_the_champion(dashboard: Settings, path: str) -> None:
    app = open_page(path)
    assert "champion v1" in shown(app)


def test_overview_shows_the_champion_against_the_baselines_and_both_verdicts(dashboard: Settings) -> None:
    app = open_page("pages/overview.py")
    text = shown(app)
    assert "Champion: taxi-duration v1" in text
    assert "feature set: with_distance" in text
    assert "trained on: 2023-01" in text
    rmse = app.table[0].value
    assert list(rmse.index) == ["validate", "test"]
    assert {"model", "course baseline", "zone-pair median"} <= set(rmse.columns)
    assert (rmse["model"] < rmse["course baseline"]).all()
    verdicts = [e.value for e in app.success]  # synthetic months: no drift, about 8% quarantined
    assert any(v.startswith("**Drift: ok**") for v in verdicts)
    assert any(v.startswith("**Data quality: ok**") for v in verdicts)


def test_data_quality_counts_each_month_from_the_reports(dashboard: Settings, reports: Path) -> None:
    app = open_page("pages/quality.py")
    months = app.dataframe[0].value
    assert list(months["month"]) == list(MONTHS)
    report = json.loads((reports / "quality" / "report.json").read_text())
    for f, row in zip(report["files"], months.itertuples(), strict=True):
        assert (row.input, row.clean, row.quarantined) == (f["input_rows"], f["clean_rows"], f["quarantined_rows"])
    reasons = app.get("plotly_chart")[1]
    assert "2023-01..2023-03" in reasons.proto.spec  # one report of three months: its reasons as one


def test_model_page_lists_the_registry_and_the_logged_coverage(dashboard: Settings) -> None:
    app = open_page("pages/model.py")
    registry = app.dataframe[0].value
    assert list(registry["version"]) == [1]
    assert bool(registry["champion now"].iloc[0])
    assert "Registry: the champion is v1" in shown(app)
    assert len(app.get("plotly_chart")) == 2  # RMSE by borough and by hour band, from scores.json
    assert any("interval" in m.label for m in app.metric)


def test_drift_page_shows_every_check_of_the_summary(dashboard: Settings, reports: Path) -> None:
    app = open_page("pages/drift.py")
    summary = json.loads((reports / "drift" / MONTHS[2] / "summary.json").read_text())
    checks = app.dataframe[0].value
    assert set(checks["check"]) == {c["name"] for c in summary["checks"]}
    assert str(reports / "drift" / MONTHS[2] / "report.html") in shown(app)


def test_the_map_colours_every_zone_with_the_scorers_own_minutes(dashboard: Settings) -> None:
    app = open_page("pages/travel_map.py")
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    choropleth = spec["data"][0]
    assert list(array(choropleth["locations"])) == list(travel_times.zone_ids())
    assert len(choropleth["geojson"]["features"]) == 263
    minutes = array(choropleth["z"])
    assert np.isfinite(minutes).all()
    assert (minutes > 0).all()


def array(value: dict[str, str] | list[float]) -> np.ndarray:
    """A plotly array as the figure's JSON carries it: a list, or typed bytes in base64."""
    if isinstance(value, list):
        return np.asarray(value)
    return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])


def test_map_minutes_are_the_scorers_for_each_trip_alone(registry: Settings, tmp_path: Path) -> None:
    scorer = load(registry, DEFAULT_MODEL, tmp_path)
    pickup = travel_times.pickup_time("2023-02", 0, 8)
    assert pickup == datetime(2023, 2, 13, 8)  # the 8th-14th, skipping no holiday; Presidents' Day is the 20th
    assert travel_times.pickup_time("2023-02", 0, 8).weekday() == 0
    table = travel_times.minutes_from(scorer, 161, pickup)
    for row in table.sample(5, random_state=0).itertuples():
        trip = {s.PICKUP: pickup, s.PU_ZONE: 161, s.DO_ZONE: int(row.zone), s.PASSENGERS: 1, s.DISTANCE: row.miles}
        alone = scorer.score([trip])
        assert alone is not None
        assert row.minutes == pytest.approx(alone.minutes[0], abs=1e-9)


def test_the_holiday_week_is_skipped() -> None:
    # 2023-01-16 is Martin Luther King Jr. Day: the Monday of January's plain week is the 9th, the 23rd after it.
    assert travel_times.pickup_time("2023-01", 0, 9) == datetime(2023, 1, 9, 9)
    assert travel_times.pickup_time("2022-10", 0, 9) == datetime(2022, 10, 17, 9)  # Columbus Day is the 10th


def test_a_store_without_a_champion_is_said_and_the_reports_still_show(
    dashboard: Settings, reports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The registry with its champion alias removed (a new empty store would spend seconds creating its tables).
    shutil.copy(Path(str(dashboard.mlflow_tracking_uri).removeprefix("sqlite:///")), tmp_path / "mlflow.db")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(store, store).delete_registered_model_alias(MODEL_NAME, CHAMPION)
    use(monkeypatch, dashboard, mlflow_tracking_uri=store)
    for path in ("pages/overview.py", "pages/model.py", "pages/travel_map.py"):
        text = shown(open_page(path))
        assert f"no champion in the MLflow store {store}" in text
        assert "no champion yet" in text
        assert "taxi-duration run" in text
    assert list(open_page("pages/quality.py").dataframe[0].value["month"]) == list(MONTHS)
    assert len(open_page("pages/drift.py").dataframe) == 1


def test_a_store_that_does_not_exist_is_said_and_not_created(
    dashboard: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'none' / 'mlflow.db'}"
    use(monkeypatch, dashboard, mlflow_tracking_uri=store)
    for path in ("pages/overview.py", "pages/model.py", "pages/travel_map.py"):
        assert f"no champion in the MLflow store {store}" in shown(open_page(path))
    assert not (tmp_path / "none").exists()  # the dashboard reads; it never makes an empty store


def test_an_unreachable_server_is_said_on_live(dashboard: Settings, closed_port: int) -> None:
    text = shown(open_page("pages/live.py"))
    assert f"no server at http://127.0.0.1:{closed_port}/metrics" in text
    assert "taxi-duration serve" in text
    assert "no stream output folder given" in text


def test_corrupt_reports_are_named_and_the_good_ones_still_show(
    dashboard: Settings, reports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(reports, tmp_path / "reports")
    (tmp_path / "reports" / "quality" / "2023-04").mkdir()
    (tmp_path / "reports" / "quality" / "2023-04" / "report.json").write_text('{"input_rows": 12, "clean')
    (tmp_path / "reports" / "drift" / "broken").mkdir()
    (tmp_path / "reports" / "drift" / "broken" / "summary.json").write_text('{"checks": "not a list"}')
    use(monkeypatch, dashboard, dashboard_reports=tmp_path / "reports")
    quality = open_page("pages/quality.py")
    assert "2023-04/report.json is not a readable validate report" in shown(quality)
    assert list(quality.dataframe[0].value["month"]) == list(MONTHS)
    drift = open_page("pages/drift.py")
    assert "broken/summary.json is not a readable drift summary" in shown(drift)
    assert len(drift.dataframe) == 1
    assert "Champion: taxi-duration v1" in shown(open_page("pages/overview.py"))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"created_at": 12345}, "created_at is 12345, not an ISO time"),
        ({"created_at": "last Tuesday"}, "unable to parse: last Tuesday"),
        ({"statistic": "high"}, "statistic is 'high', not a number"),
        ({"drift": True, "crossed": []}, "contradict its checks' verdicts"),
    ],
)
def test_a_well_formed_drift_summary_with_bad_values_is_named_not_a_crash(
    dashboard: Settings,
    reports: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, object],
    why: str,
) -> None:
    shutil.copytree(reports, tmp_path / "reports")
    summary = json.loads((reports / "drift" / MONTHS[2] / "summary.json").read_text())
    if "statistic" in change:
        summary["checks"][0]["statistic"] = change["statistic"]
    else:
        summary |= change
    summary["created_at"] = change.get("created_at", "2099-01-01T00:00:00+00:00")  # the newest, if read
    (tmp_path / "reports" / "drift" / "odd").mkdir()
    (tmp_path / "reports" / "drift" / "odd" / "summary.json").write_text(json.dumps(summary))
    use(monkeypatch, dashboard, dashboard_reports=tmp_path / "reports")
    drift = open_page("pages/drift.py")
    assert not drift.exception
    assert "odd/summary.json is not a readable drift summary" in shown(drift)
    assert why in shown(drift)
    assert len(drift.dataframe) == 1  # the good summary still shows
    overview = open_page("pages/overview.py")
    assert not overview.exception
    assert "2099" not in shown(overview)  # the verdict is the good summary's


def test_no_drift_report_yet_names_the_command(
    dashboard: Settings, reports: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, dashboard, dashboard_reports=reports / "quality")
    for path in ("pages/drift.py", "pages/overview.py"):
        text = shown(open_page(path))
        assert f"no drift report yet under {(reports / 'quality').resolve()}" in text
        assert "taxi-duration drift --reference" in text
    assert len(open_page("pages/quality.py").dataframe) == 1


def test_live_reads_the_servers_metrics_and_the_streams_batches(
    dashboard: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = Metrics()  # the server's own metrics, served by Prometheus' HTTP exporter
    for seconds in (0.0003, 0.0004, 0.0004, 0.003):
        metrics.latency.labels("/predict").observe(seconds)
        metrics.requests.labels("/predict", "200").inc()
    metrics.requests.labels("/predict", "422").inc()
    metrics.requests.labels("/health", "500").inc()
    metrics.trips.inc(4)
    metrics.version.set(1)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        sample = sources.server_metrics(url, 0.0)
        assert isinstance(sample, sources.ServerSample)
        assert (sample.total, sample.errors, sample.refused, sample.trips) == (6, 1, 1, 4)
        assert 0.2 < sample.latency_ms(0.5) <= 0.5  # two of four in the 0.2-0.5 ms bucket
        assert 2 < sample.latency_ms(0.99) <= 5
        scored = datetime.now(UTC) - timedelta(seconds=30)
        for batch, rows in ((0, 3), (1, 5)):
            write_batch(tmp_path / "out", batch, rows, scored + timedelta(seconds=10 * batch))
        use(monkeypatch, dashboard, dashboard_metrics_url=url, dashboard_stream=tmp_path / "out")
        text = shown(open_page("pages/live.py"))
    finally:
        server.shutdown()
        thread.join()
    assert "p50 latency" in text
    assert "errors (5xx): 1" in text
    assert "batches: 2" in text
    assert "events predicted: 8" in text
    assert "events/s (median batch): 0.6" in text  # 5 predicted + 1 quarantined, 10 s after the batch before


def write_batch(output: Path, batch: int, rows: int, scored_at: datetime) -> None:
    """One batch as the stream's sink writes it: its predictions and one quarantined line."""
    (output / PREDICTIONS).mkdir(parents=True, exist_ok=True)
    (output / STREAM_QUARANTINE).mkdir(parents=True, exist_ok=True)
    predictions = pa.table(
        {
            "trip_id": [f"t{batch}-{i}" for i in range(rows)],
            "predicted_minutes": [12.0] * rows,
            "model_version": ["1"] * rows,
            "scored_at": pa.array([scored_at] * rows, pa.timestamp("us", tz="UTC")),
        }
    )
    pq.write_table(predictions, output / PREDICTIONS / f"batch-{batch:08d}.parquet")
    refused = pa.table({"raw_line": ["x"], "file": ["f"], "trip_id": [None], "reason": ["unreadable_line"]})
    pq.write_table(refused, output / STREAM_QUARANTINE / f"batch-{batch:08d}.parquet")


@pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium: `apt-get install chromium` (scripts/chromium.sh) runs the browser test"
)
def test_a_real_browser_opens_every_page(registry: Settings, reports: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="the dashboard extra (playwright) is not installed")
    port, closed = free_port(), free_port()
    settings = registry.model_copy(
        update={"dashboard_reports": reports, "dashboard_metrics_url": f"http://127.0.0.1:{closed}/metrics"}
    )
    command = [str(Path(sys.executable).with_name("taxi-duration")), "dashboard", "--port", str(port)]
    process = subprocess.Popen(command, env={**os.environ, **environment(settings)}, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    shots = Path(os.environ.get(SCREENSHOTS_ENV, tmp_path))
    # What each page shows once its data is in (the map: a path per zone).
    ready = {
        "Overview": "text=Champion: taxi-duration v1",
        "Data quality": "text=Validated rows per month",
        "Model": "text=Registry: the champion is v1",
        "Drift": "text=Latest checks",
        "Live": "text=no server at",
        "Travel-time map": "path.choroplethlocation >> nth=262",
    }
    try:
        wait_ready(url, timeout_s=90, path="/_stcore/health", alive=lambda: process.poll() is None)
        errors: list[str] = []
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)  # the first page
            for number, (_, title) in enumerate(PAGES):
                if number:
                    page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True).click()
                page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
                page.locator(ready[title]).first.wait_for(state="attached", timeout=60_000)
                page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=60_000)
                page.wait_for_function(SETTLED, timeout=60_000)
                assert page.locator("[data-testid='stSidebar']").get_by_text("taxi-duration champion v1").count()
                assert not page.locator("[data-testid='stException']").count(), title
                name = title.lower().replace(" ", "-").replace("-time", "")
                page.screenshot(path=shots / f"dashboard-{name}.png")
            browser.close()
        assert not errors, errors
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert "Traceback" not in err.decode(), err.decode()
