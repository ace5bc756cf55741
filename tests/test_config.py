"""Settings: defaults that work, then a TOML file, the environment and flags, each overriding the last."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from taxi_duration.core.config import Engine, FeatureSet, Search, load_settings, main_job_search
from taxi_duration.core.errors import UsageError
from tests.conftest import Holding


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "TAXI_DURATION_ENGINE",
        "TAXI_DURATION_DATA_DIR",
        "TAXI_DURATION_SPARK_MASTER",
        "TAXI_DURATION_FEATURE_SET",
        "TAXI_DURATION_SEARCH",
        "MLFLOW_TRACKING_URI",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no taxi-duration.toml here unless a test writes one


def test_defaults_work_on_a_fresh_clone() -> None:
    s = load_settings()
    assert (s.engine, s.spark_master, s.data_dir) == (Engine.DUCKDB, "local[*]", Path("data"))
    assert s.mlflow_tracking_uri == f"sqlite:///{Path('data/mlflow/mlflow.db').resolve()}"


def test_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "taxi-duration.toml").write_text('engine = "spark"\nspark_master = "spark://head:7077"\n')
    assert load_settings().engine is Engine.SPARK
    monkeypatch.setenv("TAXI_DURATION_ENGINE", "pandas")
    s = load_settings()
    assert (s.engine, s.spark_master) == (Engine.PANDAS, "spark://head:7077")
    assert load_settings(engine=Engine.DUCKDB).engine is Engine.DUCKDB


def test_the_main_job_searches_quickly_and_says_so_unless_a_search_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def chosen(**flags: str) -> tuple[Search, str | None]:
        settings, note = main_job_search(load_settings(**flags))
        return settings.search, note

    search, note = chosen()
    assert search is Search.QUICK
    assert "--search full" in str(note)
    assert load_settings().search is Search.FULL  # `train`'s default is untouched
    assert chosen(search="full") == (Search.FULL, None)  # a flag
    monkeypatch.setenv("TAXI_DURATION_SEARCH", "full")
    assert chosen() == (Search.FULL, None)
    monkeypatch.delenv("TAXI_DURATION_SEARCH")
    (tmp_path / "taxi-duration.toml").write_text('search = "full"\n')
    assert chosen() == (Search.FULL, None)


def test_the_tuned_search_has_its_cap_and_budget_from_the_environment_or_a_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TAXI_DURATION_SEARCH", "tune")
    monkeypatch.setenv("TAXI_DURATION_TUNE_TRIALS", "7")
    settings = load_settings(tune_budget_s=30)
    assert (settings.search, settings.tune_trials, settings.tune_budget_s) == (Search.TUNE, 7, 30.0)
    assert load_settings(tune_trials=3).tune_trials == 3  # the flag wins
    with pytest.raises(UsageError, match="tune_budget_s"):
        load_settings(tune_budget_s=0)


def test_named_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "cluster.toml"
    cfg.write_text('data_dir = "/mnt/taxi"\n')
    assert load_settings(cfg).data_dir == Path("/mnt/taxi")
    with pytest.raises(UsageError, match="config file not found"):
        load_settings(tmp_path / "missing.toml")


def test_mlflow_follows_its_own_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert load_settings().mlflow_tracking_uri == "http://127.0.0.1:5000"


def test_unknown_settings_and_engines_are_refused(tmp_path: Path) -> None:
    (tmp_path / "taxi-duration.toml").write_text('engnie = "spark"\n')
    with pytest.raises(UsageError, match=r"invalid settings \(engnie: Extra inputs are not permitted"):
        load_settings()
    assert Engine.parse("local") is Engine.DUCKDB
    with pytest.raises(UsageError, match="unknown engine 'excel': choose duckdb"):  # raised where it occurs
        Engine.parse("excel")


def test_a_feature_set_is_checked_when_the_settings_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert load_settings().feature_set is FeatureSet.WITH_DISTANCE
    monkeypatch.setenv("TAXI_DURATION_FEATURE_SET", "pretrip")
    assert load_settings().feature_set is FeatureSet.PRETRIP
    monkeypatch.setenv("TAXI_DURATION_FEATURE_SET", "everything")
    refused = r"invalid settings \(feature_set: Input should be 'with_distance' or 'pretrip'"
    with pytest.raises(UsageError, match=refused):
        load_settings()
    monkeypatch.delenv("TAXI_DURATION_FEATURE_SET")
    (tmp_path / "taxi-duration.toml").write_text('feature_set = "pre_trip"\n')
    with pytest.raises(UsageError, match="feature_set: Input should be"):
        load_settings()


def test_a_killed_runs_scratch_folder_is_removed_by_the_next_run_but_never_a_live_ones(tmp_path: Path) -> None:
    make = (
        f"from taxi_duration.core.config import load_settings as s; print(s(data_dir={str(tmp_path)!r}).scratch_dir())"
    )
    killed, live = Holding(make), Holding(make)
    killed_folder, live_folder = Path(killed.said), Path(live.said)
    try:
        killed.kill()
        assert killed_folder.is_dir()  # SIGKILL leaves it behind
        finished = subprocess.run([sys.executable, "-c", make], capture_output=True, text=True, check=True)
        assert not killed_folder.exists()  # the next run removed it
        assert live_folder.is_dir()  # a live run's folder stays
        assert not Path(finished.stdout.strip()).exists()  # and a run that ends removes its own
    finally:
        live.kill()


def test_a_command_run_from_a_sub_folder_finds_the_projects_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve`, `dashboard`, `evaluate`... run from `notebooks/` open the store `make run` made at the root."""
    project = tmp_path / "project"
    (project / "notebooks" / "deep").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(project / "notebooks" / "deep")
    s = load_settings()
    assert s.data_dir == project / "data"
    assert s.mlflow_tracking_uri == f"sqlite:///{project / 'data' / 'mlflow' / 'mlflow.db'}"
    (project / "notebooks" / "data" / "mlflow").mkdir(parents=True)  # a folder with a store of its own
    assert load_settings().data_dir == project / "notebooks" / "data"
    monkeypatch.chdir(project)
    assert load_settings().data_dir == Path("data")


def test_the_readme_lists_every_setting_as_the_model_declares_it() -> None:
    """README's settings table is made from the model: a setting added, renamed or redescribed fails here
    until `python scripts/settings_table.py` is run."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "settings_table.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    readme = (root / "README.md").read_text()
    assert "| `stream_settle_seconds` | `TAXI_DURATION_STREAM_SETTLE_SECONDS` | `1.0` |" in readme
