"""Live: a running server's requests, latency and errors from its `/metrics`; the stream's throughput and lag."""

from __future__ import annotations

import time

import plotly.express as px
import streamlit as st

from taxi_duration.monitor.dashboard import sources, ui
from taxi_duration.monitor.dashboard.sources import Missing, ServerSample

REFRESH_S = 5
settings, _ = ui.page("Live")


@st.fragment(run_every=REFRESH_S)
def server() -> None:
    """The server panel, scraped again every REFRESH_S seconds; the rate is the change since the last scrape."""
    url = settings.dashboard_metrics_url
    st.subheader("Prediction server")
    sample = sources.server_metrics(url, time.monotonic())
    if isinstance(sample, Missing):
        ui.missing(sample)
        return
    before: ServerSample | None = st.session_state.get("last_scrape")
    st.session_state["last_scrape"] = sample
    rate = sources.requests_per_s(before, sample) if before is not None else None
    cols = st.columns(6)
    cols[0].metric("requests/s", "-" if rate is None else f"{rate:.1f}")
    for col, q in zip(cols[1:4], (0.5, 0.9, 0.99), strict=True):
        col.metric(f"p{q * 100:g} latency", f"{sample.latency_ms(q):.3g} ms")
    cols[4].metric("errors (5xx)", f"{sample.errors:,.0f}")
    cols[5].metric("refused (4xx)", f"{sample.refused:,.0f}")
    version = "-" if sample.model_version is None else f"v{sample.model_version:.0f}"
    st.caption(
        f"{url}: model {version}, {sample.total:,.0f} requests and {sample.trips:,.0f} trips predicted since it "
        f"started; latency inside the server, prediction endpoints; refreshed every {REFRESH_S} s"
    )
    ui.table(sample.requests.sort_values("count", ascending=False))


server()

st.subheader("Stream")
batches = sources.stream_batches(settings)
if isinstance(batches, Missing):
    ui.missing(batches)
else:
    cols = st.columns(4)
    cols[0].metric("batches", f"{len(batches):,}")
    cols[1].metric("events predicted", f"{batches['predicted'].sum():,}")
    cols[2].metric("events/s (median batch)", f"{batches['events/s'].median():.1f}")
    cols[3].metric("since the last batch", f"{sources.stream_lag_s(batches):,.0f} s")
    ui.figure(px.bar(batches, x="scored_at", y=["predicted", "quarantined"], title="Events per batch"), height=300)
