"""Where a notebook runs: its data (a parameter, ../shared/data, or synthetic months), work folder and settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import parse_months
from taxi_duration.ingest.synth import generate
from taxi_duration.ops import notebook_env


@pytest.fixture(scope="module")
def months(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small months: one more than the notebooks' three."""
    folder = tmp_path_factory.mktemp("trips")
    generate(800, parse_months("2023-01..2023-04"), folder, seed=1)
    return folder


def test_databricks_is_told_by_its_runtime_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(notebook_env.DATABRICKS_ENV, raising=False)
    assert not notebook_env.on_databricks()
    monkeypatch.setenv(notebook_env.DATABRICKS_ENV, "17.3")
    assert notebook_env.on_databricks()


def test_data_given_keeps_the_months_asked_and_settings_live_in_the_work_folder(
    months: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow's own variable wins over the work folder's store (a user's choice); training elsewhere in the
    # process sets it (mlflow.set_tracking_uri exports it for child processes).
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = notebook_env.where_am_i(str(months), str(tmp_path / "work"))
    assert [f.path.name for f in env.files] == [f"green_tripdata_2023-0{m}.parquet" for m in (1, 2, 3)]
    assert (env.origin, env.databricks, env.work) == ("parameter", False, tmp_path / "work")
    assert env.settings.data_dir == tmp_path / "work"
    assert env.settings.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'work' / 'mlflow' / 'mlflow.db'}"
    assert env.settings.search == "quick"
    table = env.describe()
    assert table.loc["months", ""] == "2023-01, 2023-02, 2023-03"
    assert table.loc["trips", ""] == f"{sum(f.rows for f in env.files):,}"
    assert env.path("01_validated") == tmp_path / "work" / "01_validated"


@pytest.mark.parametrize(
    ("data", "wanted", "said"),
    [
        ("{tmp}/missing", "2023-01..2023-03", "{tmp}/missing: no such file, folder or matching glob"),
        ("dbfs:/mnt/missing", "2023-01..2023-03", "/dbfs/mnt/missing: no such file, folder or matching glob"),
        ("{months}", "2024-01", "no trip file of 2024-01 in {months}"),
    ],
)
def test_data_that_is_not_there_is_one_clear_error(
    months: Path, tmp_path: Path, data: str, wanted: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(notebook_env.DATABRICKS_ENV, raising=False)
    names = {"tmp": tmp_path, "months": months}
    with pytest.raises(UsageError) as failed:
        notebook_env.where_am_i(data.format(**names), str(tmp_path / "work"), months=wanted)
    assert str(failed.value) == said.format(**names)


def test_without_data_or_shared_files_small_synthetic_months_are_made_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no shared/data beside it
    monkeypatch.delenv(notebook_env.DATABRICKS_ENV, raising=False)
    env = notebook_env.where_am_i(work=str(tmp_path / "work"))
    assert env.origin == "synthetic"
    assert [f.path.parent for f in env.files] == [tmp_path / "work" / "synthetic"] * 3
    assert sum(f.rows for f in env.files) == notebook_env.SYNTHETIC_ROWS
    made = [f.path.stat().st_mtime_ns for f in env.files]
    again = notebook_env.where_am_i(work=str(tmp_path / "work"))
    assert [f.path.stat().st_mtime_ns for f in again.files] == made


def test_shared_data_is_found_beside_a_parent_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (shared / "green_tripdata_2023-01.parquet").touch()
    (tmp_path / "repo" / "notebooks" / "deeper").mkdir(parents=True)
    assert notebook_env.find_shared(tmp_path / "repo" / "notebooks") == shared
    assert notebook_env.find_shared(tmp_path / "repo") == shared
    assert notebook_env.find_shared(tmp_path / "repo" / "notebooks" / "deeper") is None  # too far up
    (shared / "green_tripdata_2023-01.parquet").unlink()
    assert notebook_env.find_shared(tmp_path / "repo") is None
