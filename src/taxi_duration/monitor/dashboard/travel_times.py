"""The travel-time map's logic: the zone shapes as GeoJSON, and the champion's minutes from one zone to all.

Minutes come from the model's own road (`Scorer.score`), with every zone as a destination in one call of
trips as dicts: the online fast path the API takes, not a separate formula. A `with_distance` model also
reads the metered distance, which a trip not yet driven does not have: each pair gets its typical miles
(`Profile.typical_miles`: the real median of a top pair, else the centroid distance times the detour factor).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import shapely

from taxi_duration.core import schema as s
from taxi_duration.core.months import Month
from taxi_duration.features.definitions import holiday_keys
from taxi_duration.geo.calibration import load_profile
from taxi_duration.geo.shapes import PACKAGED_SHAPES, load_index
from taxi_duration.geo.zones import boroughs, centroids
from taxi_duration.serve.scorer import Scorer

# The page sends every zone again on each change: simplified by 2e-4 degrees (about 20 m, invisible at city
# scale) and snapped to 1e-5 (about 1 m), the GeoJSON is 250 KB, against 400 KB at 1e-4 unsnapped.
MAP_TOLERANCE_DEG = 2e-4
MAP_GRID_DEG = 1e-5
# plotly.js fetches a world base map (`world_110m.json`, from its CDN by default) before it draws a choropleth,
# even with the base layers hidden. The app serves an empty one from `static/` instead: the zones are the whole
# map, and it draws offline.
BASE_MAP_URL = "app/static/"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@cache
def zone_ids() -> tuple[int, ...]:
    """The 263 zones that have a shape, in id order."""
    return tuple(sorted(int(z) for z in load_index(PACKAGED_SHAPES).ids))


@cache
def geojson() -> dict[str, Any]:
    """The packaged zone shapes (longitude and latitude already) as a GeoJSON FeatureCollection keyed by zone id."""
    index = load_index(PACKAGED_SHAPES)
    simplified = shapely.set_precision(
        shapely.simplify(index.polygons, MAP_TOLERANCE_DEG, preserve_topology=True), MAP_GRID_DEG
    )
    names = boroughs()
    features = [
        {
            "type": "Feature",
            "id": int(zone),
            "properties": {"zone": int(zone), "borough": names[int(zone)]},
            "geometry": shapely.geometry.mapping(shape),
        }
        for zone, shape in zip(index.ids.tolist(), simplified, strict=True)
    ]
    return {"type": "FeatureCollection", "features": features}


def pickup_time(month: str, weekday: int, hour: int) -> datetime:
    """A pickup at `hour` on the first `weekday` (Monday 0) of `month` from its 8th that is no holiday: a
    plain week the model has seen the like of (the month is the champion's validation month)."""
    first = Month.parse(month)
    day = date(first.year, first.month, 8)
    holidays = set(holiday_keys())
    while day.weekday() != weekday or day.year * 10_000 + day.month * 100 + day.day in holidays:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, hour)


def minutes_from(scorer: Scorer, pickup_zone: int, pickup: datetime) -> pd.DataFrame:
    """The champion's minutes (and p10-p90) from `pickup_zone` to every zone, in one scorer call."""
    destinations = np.array(zone_ids())
    miles = load_profile().typical_miles(pickup_zone, destinations)
    trips = [
        {s.PICKUP: pickup, s.PU_ZONE: pickup_zone, s.DO_ZONE: int(z), s.PASSENGERS: 1, s.DISTANCE: round(float(m), 2)}
        for z, m in zip(destinations, miles, strict=True)
    ]
    answer = scorer.score(trips)
    assert answer is not None  # only `remembered_only` calls may get None
    names = boroughs()
    return pd.DataFrame(
        {
            "zone": destinations,
            "borough": [names[int(z)] for z in destinations],
            "miles": np.round(miles, 2),
            "minutes": answer.minutes,
            "p10": answer.p10,
            "p90": answer.p90,
        }
    )


def figure(minutes: pd.DataFrame, pickup_zone: int, title: str) -> go.Figure:
    """The choropleth of `minutes_from`'s answer, with hover values and the pickup zone marked."""
    hover = (
        "zone %{location} (%{customdata[0]})<br>%{z:.1f} min (p10-p90 %{customdata[1]:.1f}-%{customdata[2]:.1f})"
        "<br>%{customdata[3]:.2f} miles<extra></extra>"
    )
    fig = go.Figure(
        go.Choropleth(
            geojson=geojson(),
            locations=minutes["zone"],
            z=minutes["minutes"],
            featureidkey="id",
            customdata=minutes[["borough", "p10", "p90", "miles"]],
            hovertemplate=hover,
            colorscale="Viridis",
            marker_line_width=0.3,
            colorbar_title="minutes",
        )
    )
    lon, lat = centroids()[pickup_zone]
    pickup = go.Scattergeo(
        lon=[lon], lat=[lat], mode="markers", marker={"size": 12, "color": "#d62728"}, hoverinfo="skip"
    )
    fig.add_trace(pickup)
    fig.update_geos(fitbounds="locations", visible=False)
    fig.update_layout(showlegend=False, title=title)
    return fig
