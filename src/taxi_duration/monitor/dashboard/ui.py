"""What every page shares: the settings, how a missing source is shown, verdicts, the figure style, caches."""

from __future__ import annotations

from typing import Any, TypeVar

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from taxi_duration.core.config import MODEL_NAME, Settings, load_settings
from taxi_duration.monitor.dashboard import sources
from taxi_duration.monitor.dashboard.sources import Missing
from taxi_duration.serve.scorer import Scorer, load

# matplotlib's tab10, which train/plots.py and the drift report draw with (plotly calls it D3).
COLORS = px.colors.qualitative.D3
OK, BAD = COLORS[2], COLORS[3]
px.defaults.template = "plotly_white"
px.defaults.color_discrete_sequence = COLORS
T = TypeVar("T")


def page(title: str) -> tuple[Settings, sources.Champion | Missing]:
    """Start a page: its title, and in the sidebar the champion every page's numbers are about. Answers the
    settings as the command resolved them (it passes its flags on in the environment), read on every run (a
    few milliseconds, and a changed environment is seen), and the champion."""
    settings = load_settings()
    champion = sources.champion(settings)
    st.sidebar.caption(
        "no champion yet" if isinstance(champion, Missing) else f"{MODEL_NAME} champion v{champion.version}"
    )
    st.title(title)
    return settings, champion


def missing(m: Missing) -> None:
    """Say plainly what a panel lacks and the command that makes it."""
    st.warning(f"{m.what}. Make it with:", icon=":material/info:")
    st.code(m.command, language="bash")


def shown(found: T | Missing) -> T | None:
    """A source's data to draw (its unreadable files said first, if it lists `problems`), or None once what
    is missing has been said."""
    if isinstance(found, Missing):
        missing(found)
        return None
    for problem in getattr(found, "problems", []):
        missing(problem)
    return found


def verdict(label: str, good: bool, detail: str) -> None:
    """A green or red line a reader takes in at a glance."""
    (st.success if good else st.error)(f"**{label}: {'ok' if good else 'attention'}**. {detail}")


def figure(fig: go.Figure, height: int = 360, **config: Any) -> None:
    """A plotly figure in the project's style, full width; `config` adds to plotly.js's options."""
    fig.update_layout(
        template="plotly_white", colorway=COLORS, height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}
    )
    st.plotly_chart(fig, width="stretch", theme=None, config={"displaylogo": False, **config})


@st.cache_resource(show_spinner="loading the champion", max_entries=2)
def scorer(_settings: Settings, tracking_uri: str, version: str) -> Scorer:
    """The model version, loaded once per process (its store and version are the cache key)."""
    return load(_settings, f"models:/{MODEL_NAME}/{version}", _settings.scratch_dir())


def table(frame: Any, **kwargs: Any) -> None:
    """A data frame, full width, without its index."""
    st.dataframe(frame, width="stretch", hide_index=True, **kwargs)
