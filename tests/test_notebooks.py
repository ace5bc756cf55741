"""The notebooks in notebooks/, run as Databricks or papermill runs them: every cell in order in a fresh kernel,
the parameters cell's values replaced, on small synthetic months; any cell error fails. Each notebook ends
with a `summary` the tests check. A notebook pointed at data that is not there fails at once, in one line."""

from __future__ import annotations

import ast
import os
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from taxi_duration.core.months import parse_months
from taxi_duration.ingest.synth import generate
from taxi_duration.ops.notebook_env import MONTHS

pytestmark = pytest.mark.notebooks

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ORDER = ("01_data", "02_pandas_vs_pyspark", "03_features", "04_training", "05_serving_and_drift")
CELL_TIMEOUT_S = 600  # a cell that runs longer is stuck: the notebook fails instead of hanging
ROWS = 6_000  # over three months: tiny, yet every rule and store level has rows
# 04 trains with the embedded pipeline here: the Spark training job alone (MLlib, XGBoost, their ensemble, four
# scored parts) took 7-10 minutes for 3,000-9,000 rows on the shared 2-core machine, past the suite's budget.
# Its Spark path is the same `train` call that tests/test_training.py::test_spark_pipeline_end_to_end runs;
# 02 keeps a Spark session in the notebooks' run, on one month: its plan reads each file on its own, and one
# file instead of three took Spark's part from 85 s to 45 s on that machine.
PARAMETERS: dict[str, dict[str, str]] = {
    "02_pandas_vs_pyspark": {"MONTHS": "2023-01"},
    "04_training": {"ENGINE": "duckdb"},
}


def load(name: str, **parameters: Any) -> nbformat.NotebookNode:
    """A notebook with its parameters replaced as papermill replaces them: a cell with the new values right
    after the cell tagged `parameters`."""
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    tagged = [i for i, c in enumerate(book.cells) if "parameters" in c.metadata.get("tags", [])]
    assert tagged, f"{name}: no cell tagged `parameters`"
    values = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    book.cells.insert(tagged[0] + 1, nbformat.v4.new_code_cell(values, metadata={"tags": ["injected-parameters"]}))
    return book


def run(book: nbformat.NotebookNode, cwd: Path) -> None:
    """Run every cell in a fresh kernel started in `cwd`; the outputs land in `book`, up to a failing cell."""
    # The kernel is this Python with this environment, but a small local Spark and no outside MLflow store.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"TAXI_DURATION_SPARK_MASTER": "local[2]", "TAXI_DURATION_SPARK_DRIVER_MEMORY": "1g"}
    env["TAXI_DURATION_DRIFT_MIN_ROWS"] = "500"  # 2,000 trips a month: fewer than a real window needs
    client = NotebookClient(
        book, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=env)


def summary(book: nbformat.NotebookNode) -> dict[str, Any]:
    """The `summary` dict the last cell leaves, as the notebook shows it."""
    shown = [o for o in book.cells[-1].outputs if o.output_type == "execute_result"]
    value: dict[str, Any] = ast.literal_eval(shown[-1]["data"]["text/plain"])
    return value


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], float]]:
    """All five notebooks in order, sharing a work folder (04 registers the model 05 serves): summaries, seconds."""
    root = tmp_path_factory.mktemp("notebooks")
    generate(ROWS, parse_months(MONTHS), root / "trips", seed=0)
    results = {}
    for name in ORDER:
        started = time.perf_counter()
        book = load(name, DATA=str(root / "trips"), WORK=str(root / "work"), **PARAMETERS.get(name, {}))
        run(book, root)
        results[name] = summary(book), time.perf_counter() - started
        print(f"{name}: {results[name][1]:.1f} s")  # shown with -s: the run's cost, notebook by notebook
    return results


def test_01_data_validates_every_row_into_clean_or_quarantined(ran: dict[str, tuple[dict[str, Any], float]]) -> None:
    found = ran["01_data"][0]
    assert found["files"] == 3
    assert found["input_rows"] == ROWS == found["clean_rows"] + found["quarantined_rows"]
    assert found["quarantined_rows"] > 0
    assert {"duplicate", "unknown_zone"} <= set(found["reasons"])


def test_02_pandas_and_spark_agree(ran: dict[str, tuple[dict[str, Any], float]]) -> None:
    found = ran["02_pandas_vs_pyspark"][0]
    assert found["same_counts"] is True
    assert found["rows"] == ROWS // 3  # the one month of the three
    assert set(found["seconds"]) == {"pandas", "spark"}


def test_03_builds_the_store_on_the_training_month(ran: dict[str, tuple[dict[str, Any], float]]) -> None:
    found = ran["03_features"][0]
    assert found["split"] == "train 2023-01, validate 2023-02, test 2023-03"
    assert 0 < found["store_rows"] <= found["rows"]["train"]
    assert all(n > 0 for n in found["rows"].values())


def test_04_trains_registers_and_beats_the_mean(ran: dict[str, tuple[dict[str, Any], float]]) -> None:
    found = ran["04_training"][0]
    assert found["engine"] == "duckdb"
    assert found["model_uri"] == "models:/taxi-duration/1"
    assert found["validate_rmse"] < found["global_mean_rmse"]


def test_05_serves_the_registered_model_and_checks_drift(ran: dict[str, tuple[dict[str, Any], float]]) -> None:
    found = ran["05_serving_and_drift"][0]
    assert found["model"] == "models:/taxi-duration/1"
    assert found["predicted"] == 3
    assert found["refused"] == ["unknown_zone"]
    assert found["test_rmse"] > 0
    assert found["drift_checks"] > 10


def test_a_notebook_without_data_fails_at_once_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    book = load("01_data", DATA=str(missing), WORK=str(tmp_path / "work"))
    started = time.perf_counter()
    with pytest.raises(CellExecutionError) as failed:
        run(book, tmp_path)
    assert time.perf_counter() - started < 120  # a kernel start and one cell, never a hang
    assert failed.value.ename == "UsageError"
    cell = next(c for c in book.cells if c.cell_type == "code" and "where_am_i" in c.source)
    shown = [line for o in cell.outputs for line in o.get("text", "").splitlines()]
    assert shown == [f"error: {missing}: no such file, folder or matching glob"]  # no traceback
    assert not any(c.get("outputs") for c in book.cells[book.cells.index(cell) + 1 :])  # nothing ran after it
