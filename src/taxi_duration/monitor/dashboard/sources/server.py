"""A prediction server's `/metrics`, scraped: requests by endpoint and status, latency, trips, the model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from taxi_duration.monitor.dashboard.sources.missing import Missing

METRICS_TIMEOUT_S = 2.0
PREDICT_PREFIX = "/predict"  # the endpoints whose latency Live shows: /predict and /predict/batch


@dataclass(frozen=True)
class ServerSample:
    """One scrape of a prediction server's `/metrics`."""

    at: float  # time.monotonic() of the scrape
    requests: pd.DataFrame  # endpoint, status, count
    latency_buckets: dict[float, float]  # upper bound (s) -> requests at most that slow, prediction endpoints
    trips: float  # trips predicted since the server started
    model_version: float | None

    @property
    def total(self) -> float:
        """Requests served since the server started."""
        return float(self.requests["count"].sum())

    @property
    def errors(self) -> float:
        """Requests answered with a 5xx."""
        return float(self.requests.loc[self.requests["status"].str.startswith("5"), "count"].sum())

    @property
    def refused(self) -> float:
        """Requests answered with a 4xx (bad input, a wrong key)."""
        return float(self.requests.loc[self.requests["status"].str.startswith("4"), "count"].sum())

    def latency_ms(self, q: float) -> float:
        """The q-quantile of prediction latency, interpolated within its bucket as Prometheus does."""
        bounds = sorted(self.latency_buckets)
        total = self.latency_buckets.get(math.inf, 0.0)
        if not total:
            return math.nan
        rank, lower, below = q * total, 0.0, 0.0
        for upper in bounds:
            count = self.latency_buckets[upper]
            if count >= rank:
                if math.isinf(upper):
                    return lower * 1000
                inside = count - below
                return 1000 * (lower + (upper - lower) * ((rank - below) / inside if inside else 1.0))
            lower, below = upper, count
        return math.nan


def server_metrics(url: str, at: float) -> ServerSample | Missing:
    """Scrape `url` (a `taxi-duration serve` /metrics) once."""
    try:
        response = httpx.get(url, timeout=METRICS_TIMEOUT_S)
        response.raise_for_status()
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
    except (httpx.HTTPError, ValueError) as exc:
        return Missing(f"no server at {url} ({type(exc).__name__}: {exc})", "taxi-duration serve")
    if "taxi_duration_requests" not in families:
        return Missing(f"{url} is not a taxi-duration server's metrics", "taxi-duration serve")
    requests = pd.DataFrame(
        [
            {"endpoint": s.labels["endpoint"], "status": s.labels["status"], "count": s.value}
            for s in families["taxi_duration_requests"].samples
            if s.name.endswith("_total")
        ],
        columns=["endpoint", "status", "count"],
    )
    buckets: dict[float, float] = {}
    for s in families["taxi_duration_request_seconds"].samples:
        if s.name.endswith("_bucket") and s.labels["endpoint"].startswith(PREDICT_PREFIX):
            bound = float(s.labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + s.value
    trips = sum(s.value for s in families["taxi_duration_predicted_trips"].samples if s.name.endswith("_total"))
    version = next((s.value for s in families["taxi_duration_model_version"].samples), None)
    return ServerSample(at, requests, buckets, trips, version)


def requests_per_s(before: ServerSample, after: ServerSample) -> float:
    """Requests a second between two scrapes of the same server (0 if it restarted in between)."""
    seconds = after.at - before.at
    return max(after.total - before.total, 0.0) / seconds if seconds > 0 else math.nan
