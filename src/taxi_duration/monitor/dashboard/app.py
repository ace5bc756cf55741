"""The Streamlit entry: one page per question a team asks every morning (`pages/`, one script each).

No page icon: Streamlit fetches a page's icon from a font CDN as the tab's icon, and the app must work offline.
"""

from __future__ import annotations

import streamlit as st

from taxi_duration.monitor.dashboard import PAGES

st.set_page_config(page_title="taxi-duration", layout="wide")
st.navigation([st.Page(path, title=title) for path, title in PAGES]).run()
