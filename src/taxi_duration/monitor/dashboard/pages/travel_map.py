"""Travel-time map: every NYC taxi zone coloured by the champion's predicted minutes from one pickup zone."""

from __future__ import annotations

import streamlit as st

from taxi_duration.geo.zones import boroughs
from taxi_duration.monitor.dashboard import travel_times as tt
from taxi_duration.monitor.dashboard import ui
from taxi_duration.monitor.dashboard.sources import Missing

settings, champion = ui.page("Travel-time map")

if isinstance(champion, Missing):
    ui.missing(champion)
    st.stop()

names = boroughs()
zones = tt.zone_ids()
left, middle, right = st.columns([2, 1, 2])
pickup_zone = left.selectbox("pickup zone", zones, index=zones.index(161), format_func=lambda z: f"{z} ({names[z]})")
weekday = middle.selectbox("weekday", range(7), format_func=lambda d: tt.WEEKDAYS[d])
hour = right.slider("hour", 0, 23, 8)

scorer = ui.scorer(settings, str(settings.mlflow_tracking_uri), champion.version)
pickup = tt.pickup_time(champion.validate_month, weekday, hour)
minutes = tt.minutes_from(scorer, pickup_zone, pickup)
fig = tt.figure(minutes, pickup_zone, f"Minutes from zone {pickup_zone} ({names[pickup_zone]}), {pickup:%A} {hour}:00")
ui.figure(fig, height=640, topojsonURL=tt.BASE_MAP_URL)
st.caption(
    f"Champion v{champion.version} ({champion.feature_set}), one scorer call for all {len(zones)} zones, on "
    f"{pickup:%A %Y-%m-%d} (a plain week of its validation month)"
    + (
        "; the distance of each trip is its pair's typical metered miles (real median of top pairs, else "
        "centroid distance x detour factor)"
        if scorer.needs_distance
        else ""
    )
)
