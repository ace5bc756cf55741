"""Drift: the `drift` summaries over time, each check's statistic against its threshold, the HTML report."""

from __future__ import annotations

from pathlib import Path

import plotly.express as px
import streamlit as st

from taxi_duration.monitor.dashboard import sources, ui

settings, _ = ui.page("Drift")
st.caption(f"`drift` outputs (`summary.json`, `report.html`) under {settings.dashboard_reports}")

found = ui.shown(sources.drift_summaries(settings))
if found is not None:
    latest = found.latest
    crossed = ", ".join(latest["crossed"]) or "no check crossed its threshold"
    ui.verdict("Latest drift check", not latest["drift"], f"{latest['created_at']}: {crossed}.")
    history = found.over_time()
    fig = px.line(
        history,
        x="created_at",
        y="of threshold",
        color="check",
        markers=True,
        title="Each check's statistic / its threshold",
    )
    fig.add_hline(y=1.0, line_dash="dash", line_color=ui.BAD, annotation_text="threshold")
    ui.figure(fig, height=420)
    st.subheader("Latest checks")
    checks = history[history["created_at"] == history["created_at"].max()].drop(columns="created_at")
    ui.table(
        checks.sort_values("of threshold", ascending=False),
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in ("statistic", "of threshold")},
    )
    if latest["report"] is None:
        st.info(f"No report.html beside {latest['path']}.")
    else:
        page = Path(latest["report"])
        st.markdown(f"HTML report: `{page}`")
        html = page.read_text()
        st.download_button("Download report.html", html, file_name=page.name, mime="text/html")
        with st.expander("Show the report here"):
            st.iframe(page, height=800)
