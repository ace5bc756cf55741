"""`taxi-duration dashboard`: one Streamlit app over what the project already writes.

`sources/` reads each source (the MLflow registry and runs, `validate` reports, `drift` summaries, a
server's `/metrics`, a stream's output folder) and answers either its data or a `Missing`: what is absent and
the command that makes it. `travel_times.py` is the map's logic (zone shapes, the champion's minutes to every
zone). The pages (`pages/*.py`, one script each) only lay these out; `app.py` is the entry Streamlit runs and
`launch.py` starts it from the command line. Nothing here computes a metric the project already logged.
"""

# (script, title) of each page, in the order the navigation lists them; `app.py` runs them.
PAGES = (
    ("pages/overview.py", "Overview"),
    ("pages/quality.py", "Data quality"),
    ("pages/model.py", "Model"),
    ("pages/drift.py", "Drift"),
    ("pages/live.py", "Live"),
    ("pages/travel_map.py", "Travel-time map"),
)
