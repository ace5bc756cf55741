"""The engines' shared adapter: which failures are bad data and which are bugs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from taxi_duration.core.config import Engine, load_settings
from taxi_duration.core.errors import BadInputError
from taxi_duration.engines.frames import Runtime
from tests.conftest import ALL_ENGINES, FAST_ENGINES


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_a_value_error_of_our_own_is_a_bug_with_its_traceback_not_bad_data(runtime: Runtime) -> None:
    def ours() -> int:
        return int("not a number")  # a slip in our code, while a file is being read

    with pytest.raises(ValueError, match="invalid literal") as raised, runtime.reading("trips.csv"):
        ours()
    assert raised.traceback[-1].name == "ours"  # the traceback still points at the slip


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_a_value_pandas_cannot_convert_is_bad_data(runtime: Runtime) -> None:
    with pytest.raises(BadInputError, match=r"trips\.csv: .* could not read a value"), runtime.reading("trips.csv"):
        pd.to_datetime(pd.Series(["yesterday at noon"]), format="ISO8601")


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_a_sample_has_at_most_the_rows_asked_drawn_from_the_frame_and_repeats_with_its_seed(runtime: Runtime) -> None:
    frame = runtime.from_arrow(pa.table({"x": pa.array(range(5_000), pa.int64())}))
    drawn = sorted(runtime.sample(frame, 300, seed=1).collect()["x"].to_list())
    assert len(drawn) == 300
    assert len(set(drawn)) == 300
    assert set(drawn) <= set(range(5_000))
    assert drawn != list(range(300))  # drawn at random, not the first rows
    assert sorted(runtime.sample(frame, 300, seed=1).collect()["x"].to_list()) == drawn
    assert sorted(runtime.sample(frame, 10_000, seed=1).collect()["x"].to_list()) == list(range(5_000))


def test_a_users_duckdb_limit_is_kept_where_plans_would_spill(tmp_path: Path) -> None:
    runtime = Runtime.open(load_settings(data_dir=tmp_path, duckdb_memory_limit="300MB"), Engine.DUCKDB)
    users = runtime.native.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    with runtime.spilling():
        assert runtime.native.execute("SELECT current_setting('memory_limit')").fetchone()[0] == users
    runtime.close()
