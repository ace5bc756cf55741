"""A stream's output folder: its batches, when each was scored, events a second, the lag."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pyarrow.parquet as pq

from taxi_duration.core.config import Settings
from taxi_duration.monitor.dashboard.sources.missing import Missing
from taxi_duration.stream.writers import PREDICTIONS
from taxi_duration.stream.writers import QUARANTINE as STREAM_QUARANTINE


def stream_batches(settings: Settings) -> pd.DataFrame | Missing:
    """The stream's batches from its output folder: when each was scored, events predicted and quarantined,
    events a second since the batch before."""
    folder = settings.dashboard_stream
    if folder is None:
        return Missing(
            "no stream output folder given (the folder `taxi-duration stream --output` writes)",
            "taxi-duration dashboard --stream OUTPUT",
        )
    files = sorted((folder / PREDICTIONS).glob("batch-*.parquet"))
    if not files:
        return Missing(
            f"no stream output in {folder}",
            f"taxi-duration stream --input LANDING --output {folder} --checkpoint CHECKPOINT",
        )
    rows = []
    try:
        for path in files:
            scored = pq.read_table(path, columns=["scored_at"]).column(0)
            refused = path.parent.parent / STREAM_QUARANTINE / path.name
            rows.append(
                {
                    "batch": int(path.stem.removeprefix("batch-")),
                    "scored_at": scored[0].as_py(),
                    "predicted": len(scored),
                    "quarantined": pq.read_metadata(refused).num_rows if refused.is_file() else 0,
                }
            )
    except (OSError, ValueError, KeyError) as exc:
        return Missing(f"{folder} holds an unreadable batch file ({exc})", "restart the stream: it rewrites a batch")
    table = pd.DataFrame(rows).sort_values("scored_at", ignore_index=True)
    gap = table["scored_at"].diff().dt.total_seconds()
    table["events/s"] = (table["predicted"] + table["quarantined"]) / gap
    return table


def stream_lag_s(table: pd.DataFrame) -> float:
    """Seconds since the stream's last batch was written."""
    return (datetime.now(UTC) - table["scored_at"].iloc[-1]).total_seconds()
