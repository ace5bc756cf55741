"""Start the dashboard's Streamlit server in this process, on the settings the command resolved."""

from __future__ import annotations

import os
from pathlib import Path

from taxi_duration.core.config import Settings
from taxi_duration.core.errors import UsageError

APP = Path(__file__).with_name("app.py")
# The settings the pages read, handed on through the environment: the app loads its settings again (as every
# Streamlit script run does), and the environment ranks above a config file, so it sees what the command saw.
PASSED_ON = (
    "data_dir",
    "mlflow_tracking_uri",
    "dashboard_metrics_url",
    "dashboard_reports",
    "dashboard_stream",
    "dashboard_max_quarantined_share",
)


def environment(settings: Settings) -> dict[str, str]:
    """`TAXI_DURATION_*` variables that give the app these settings (paths made absolute)."""
    values = {name: getattr(settings, name) for name in PASSED_ON}
    return {
        f"TAXI_DURATION_{name.upper()}": str(value.resolve() if isinstance(value, Path) else value)
        for name, value in values.items()
        if value is not None
    }


def flags(host: str, port: int) -> dict[str, object]:
    """Streamlit's options: this address, no browser opened, no usage statistics sent, no file watching."""
    return {
        "server_address": host,
        "server_port": port,
        "server_headless": True,
        "server_fileWatcherType": "none",
        "server_runOnSave": False,
        "server_enableStaticServing": True,  # static/: the map's empty base layer (travel_times.BASE_MAP_URL)
        "browser_gatherUsageStats": False,
        "global_developmentMode": False,
        "client_toolbarMode": "viewer",
        "theme_base": "light",
    }


def run(settings: Settings, host: str, port: int) -> None:
    """Serve the dashboard at http://host:port until interrupted."""
    try:
        from streamlit.web import bootstrap
    except ImportError:
        raise UsageError(
            "the dashboard needs its extra: .venv/bin/pip install -e '.[dashboard]' (`make setup` installs it)"
        ) from None
    os.environ.update(environment(settings))
    options = flags(host, port)
    bootstrap.load_config_options(flag_options=options)
    bootstrap.run(str(APP), False, [], options)
