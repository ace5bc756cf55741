"""Data quality: per month validated, clean and quarantined rows, and the quarantine's reasons, from `validate`."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from taxi_duration.monitor.dashboard import sources, ui

settings, _ = ui.page("Data quality")
st.caption(f"`validate` reports (`report.json`) under {settings.dashboard_reports}")

found = ui.shown(sources.quality_reports(settings))
if found is not None:
    months = found.months.assign(share=lambda t: t["quarantined"] / t["input"])
    ui.figure(
        px.bar(
            months.melt(id_vars="month", value_vars=["clean", "quarantined"], var_name="rows", value_name="count"),
            x="month",
            y="count",
            color="rows",
            title="Validated rows per month",
            color_discrete_map={"clean": ui.OK, "quarantined": ui.BAD},
        ).update_xaxes(type="category")
    )
    ui.table(months, column_config={"share": st.column_config.NumberColumn("quarantined share", format="percent")})
    if not found.reasons.empty:
        ui.figure(
            px.bar(found.reasons, x="report", y="rows", color="reason", title="Quarantined rows by reason"),
            height=400,
        )
        st.caption(
            "A row breaking several rules counts under each, so reasons may add up to more than the quarantined rows."
        )
