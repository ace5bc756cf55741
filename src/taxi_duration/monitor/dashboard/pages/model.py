"""Model: the registry's versions and champion history, error by borough and hour band, predicted against
actual, interval coverage: all as the training run logged them to MLflow."""

from __future__ import annotations

import json

import plotly.express as px
import streamlit as st

from taxi_duration.monitor.dashboard import sources, ui
from taxi_duration.monitor.dashboard.sources import Missing
from taxi_duration.serve.intervals import LEVELS

settings, champion = ui.page("Model")

registry = sources.versions(settings)
if isinstance(champion, Missing) or isinstance(registry, Missing):
    ui.missing(champion if isinstance(champion, Missing) else registry)  # type: ignore[arg-type]
else:
    st.subheader(f"Registry: the champion is v{champion.version}")
    ui.table(registry, column_config={"validation RMSE": st.column_config.NumberColumn(format="%.4f")})
    st.markdown("**Champion history** (a version takes the alias only by beating the champion on the same data)")
    ui.table(sources.champion_history(registry))

    st.subheader(f"v{champion.version} on its validation month ({champion.validate_month})")
    scores = sources.run_artifact(settings, champion.run_id, "scores.json")
    if isinstance(scores, Missing):
        ui.missing(scores)
    else:
        validate = json.loads(scores)["validate"]
        for by, title in (("by_borough", "RMSE by pickup borough"), ("by_hour_band", "RMSE by hour band")):
            frame = sources.scores_table(validate, by)
            long = frame.reset_index(names="group").melt(id_vars="group", var_name="predictor", value_name="RMSE")
            ui.figure(px.bar(long, x="group", y="RMSE", color="predictor", barmode="group", title=title), height=340)
    left, right = st.columns(2)
    with left:
        plot = sources.run_artifact(settings, champion.run_id, "plots/predicted_vs_actual.png")
        if isinstance(plot, Missing):
            ui.missing(plot)
        else:
            st.image(plot, caption="Predicted against actual minutes (the run's own plot)")
    with right:
        low, high = LEVELS
        nominal = high - low
        if champion.interval_coverage is None:
            st.info("This run logged no interval coverage.")
        else:
            st.metric(
                f"test trips inside the p{low * 100:.0f}-p{high * 100:.0f} interval",
                f"{champion.interval_coverage:.1%}",
                f"{champion.interval_coverage - nominal:+.1%} against the nominal {nominal:.0%}",
                delta_color="off",
            )
