"""The engines' shared adapter: which failures are bad data and which are bugs."""

from __future__ import annotations

import pandas as pd
import pytest

from taxi_duration.engines import Runtime
from taxi_duration.errors import BadInputError
from tests.conftest import FAST_ENGINES


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
