"""The dashboard's data layer: every source it shows, read as it was written, or what is missing and how to make it.

Each reader answers its data or a `Missing` (what is absent, and the command that makes it) and never raises
for an absent, unreachable or corrupt source, so one bad source costs only its own panel. Nothing is
recomputed: metrics, scores and plots come from MLflow, counts from the reports the commands wrote.

One module per kind of source: `registry` (MLflow), `quality` and `drift` (the reports on disk, found by
`reports`), `server` (a server's /metrics), `stream` (a stream's output). The pages call them as `sources.X`.
"""

from taxi_duration.monitor.dashboard.sources.drift import DriftSummaries, drift_summaries
from taxi_duration.monitor.dashboard.sources.missing import Missing
from taxi_duration.monitor.dashboard.sources.quality import QualityReports, quality_reports, quarantined_share
from taxi_duration.monitor.dashboard.sources.registry import (
    Champion,
    champion,
    champion_history,
    run_artifact,
    scores_table,
    versions,
)
from taxi_duration.monitor.dashboard.sources.server import ServerSample, requests_per_s, server_metrics
from taxi_duration.monitor.dashboard.sources.stream import stream_batches, stream_lag_s

__all__ = [
    "Champion",
    "DriftSummaries",
    "Missing",
    "QualityReports",
    "ServerSample",
    "champion",
    "champion_history",
    "drift_summaries",
    "quality_reports",
    "quarantined_share",
    "requests_per_s",
    "run_artifact",
    "scores_table",
    "server_metrics",
    "stream_batches",
    "stream_lag_s",
    "versions",
]
