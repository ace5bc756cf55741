"""Overview: the champion against the baselines, and the latest drift and data-quality verdicts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from taxi_duration.core.config import MODEL_NAME
from taxi_duration.monitor.dashboard import sources, ui
from taxi_duration.monitor.dashboard.sources import Missing

settings, champion = ui.page("Overview")

if isinstance(champion, Missing):
    ui.missing(champion)
else:
    st.subheader(f"Champion: {MODEL_NAME} v{champion.version}")
    cols = st.columns([1, 1, 1.5, 1])
    cols[0].metric("champion version", f"v{champion.version}")
    cols[1].metric("model", champion.model)
    cols[2].metric("feature set", champion.feature_set)
    cols[3].metric("trained on", champion.train_months)
    st.caption(
        f"validated on {champion.validate_month}, tested on {champion.test_month}; registered and promoted "
        f"{champion.registered_at:%Y-%m-%d %H:%M} UTC (run {champion.run_id}, store {champion.tracking_uri})"
    )
    rmse = pd.DataFrame(champion.rmse).T.rename(
        columns={"course": "course baseline", "zone_pair_median": "zone-pair median"}
    )
    rmse.index.name = "RMSE, minutes"
    st.table(rmse.style.format("{:.3f}"))
    test = champion.rmse["test"]
    if {"model", "course"} <= test.keys():
        st.caption(
            f"On the test month the champion errs {1 - test['model'] / test['course']:.0%} less than the course "
            "baseline."
        )

st.subheader("Latest checks")
left, right = st.columns(2)
with left:
    drift = sources.drift_summaries(settings)
    if isinstance(drift, Missing):
        ui.missing(drift)
    else:
        latest = drift.latest
        crossed = ", ".join(latest["crossed"]) or "no check crossed its threshold"
        ui.verdict("Drift", not latest["drift"], f"{latest['created_at']}: {crossed}.")
with right:
    quality = sources.quality_reports(settings)
    if isinstance(quality, Missing):
        ui.missing(quality)
    elif quality.latest is not None:
        share = sources.quarantined_share(quality.latest)
        limit = settings.dashboard_max_quarantined_share
        ui.verdict(
            "Data quality",
            share <= limit,
            f"{quality.latest.get('created_at', '')}: {share:.1%} of {quality.latest['input_rows']:,} rows "
            f"quarantined (at most {limit:.0%} is ok).",
        )
