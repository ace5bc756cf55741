"""`taxi-duration drift`: the statistics, the synthetic drift knob told apart, the real-month cases the issue
names (with a model trained on real months), bad input, and DuckDB and Spark counting alike."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from taxi_duration.cli import main as cli
from taxi_duration.core.config import Engine, Settings, load_settings
from taxi_duration.core.months import parse_months
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import TARGET, in_target_range
from taxi_duration.ingest.inputs import check_all
from taxi_duration.ingest.quality import CLEAN_DIR, validate
from taxi_duration.ingest.synth import generate
from taxi_duration.monitor.drift import MEASURES, compare, count_array, count_values, ks_wasserstein, psi
from taxi_duration.monitor.drift_report import PLOTS, REPORT, SUMMARY
from taxi_duration.train.job import train
from tests.conftest import SPLIT, store_settings, timed_trip, write_parquet

MONTHS = parse_months("2023-01..2023-02")
CHAMPION = "models:/taxi-duration@champion"


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """`taxi-duration ARGS` in this process, through `main` as the entry point runs it: (exit code, last line)."""
    monkeypatch.setattr(sys, "argv", ["taxi-duration", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    lines = capsys.readouterr().err.strip().splitlines()
    return int(exited.value.code or 0), lines[-1] if lines else ""


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / SUMMARY).read_text())


def test_psi_is_zero_for_equal_shares_and_grows_with_a_shift() -> None:
    same = psi({"a": 100, "b": 300}, {"a": 10, "b": 30})
    assert same == pytest.approx(0.0, abs=1e-3)
    # 50/50 against 80/20, by hand: (0.3 ln 1.6) + (-0.3 ln 0.4)
    assert psi({"a": 5000, "b": 5000}, {"a": 8000, "b": 2000}) == pytest.approx(
        0.3 * math.log(1.6) - 0.3 * math.log(0.4), rel=1e-3
    )
    assert math.isfinite(psi({"a": 10}, {"b": 10}))  # a category one window lacks: finite, and large
    assert psi({"a": 10}, {"b": 10}) > 1


def test_ks_and_wasserstein_of_histograms() -> None:
    values = np.random.default_rng(0).exponential(5.0, 50_000)
    counts = count_array(values, 0.1)
    assert ks_wasserstein(counts, counts, 0.1) == (0.0, 0.0)
    shifted = count_array(values + 2.0, 0.1)  # every value 2 units later: Wasserstein is the shift
    ks, wasserstein = ks_wasserstein(counts, shifted, 0.1)
    assert wasserstein == pytest.approx(2.0, abs=0.1)
    assert ks == pytest.approx(1 - math.exp(-2.0 / 5.0), abs=0.01)  # the exponential's CDF at the shift


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Two months without drift (seed 1) and two months with strong drift (seed 2), 12,000 trips a month."""
    root = tmp_path_factory.mktemp("synth")
    return {
        "still": generate(24_000, MONTHS, root / "still", seed=1, drift=0.0),
        "drifting": generate(24_000, MONTHS, root / "drifting", seed=2, drift=0.5),
    }


def test_no_synthetic_drift_is_exit_0_and_a_whole_report(
    synthetic: dict[str, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TAXI_DURATION_DATA_DIR", str(tmp_path / "data"))
    first, second = synthetic["still"]
    code, last = run_cli(
        monkeypatch, capsys, "drift", "--reference", first, "--current", second, "--out", tmp_path / "o"
    )
    assert code == 0, last
    found = summary(tmp_path / "o")
    assert found["drift"] is False
    assert found["crossed"] == []
    assert {c["name"] for c in found["checks"]} == {f"{m.kind}:{m.column}" for m in MEASURES}
    for check in found["checks"]:
        assert check["verdict"] == "ok"
        assert 0 <= check["statistic"] < check["threshold"]
    assert found["current"]["compared_rows"] > 10_000
    page = (tmp_path / "o" / REPORT).read_text()
    assert page.count("data:image/png;base64,") == len(MEASURES) + 1  # every column and the overview, inlined
    assert "no drift" in page
    assert len(list((tmp_path / "o" / PLOTS).glob("*.png"))) == len(MEASURES) + 1


def test_strong_synthetic_drift_is_exit_3_naming_the_checks(
    synthetic: dict[str, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TAXI_DURATION_DATA_DIR", str(tmp_path / "data"))
    first, second = synthetic["drifting"]
    code, last = run_cli(
        monkeypatch, capsys, "drift", "--reference", first, "--current", second, "--out", tmp_path / "o"
    )
    assert code == 3
    assert last.startswith("drift: ")
    assert "target:duration_min" in last
    found = summary(tmp_path / "o")
    assert found["drift"] is True
    assert "target:duration_min" in found["crossed"]
    assert found["crossed"] == [c["name"] for c in found["checks"] if c["verdict"] == "drift"]


def test_thresholds_are_settings(synthetic: dict[str, list[Path]], tmp_path: Path) -> None:
    first, second = [check_all([p]) for p in synthetic["drifting"]]
    lenient = load_settings(data_dir=tmp_path, drift_ks_threshold=0.9, drift_psi_threshold=5.0)
    result = compare(lenient, first, second)
    assert result.crossed == []
    assert {c.threshold for c in result.checks} == {0.9, 5.0}


@pytest.mark.parametrize(("trips", "compared"), [([timed_trip(minutes=0.5)] * 3, 0), ([timed_trip(minutes=12)], 1)])
def test_a_window_too_small_to_judge_is_one_line_exit_1_and_nothing_written(
    synthetic: dict[str, list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    trips: list[dict[str, Any]],
    compared: int,
) -> None:
    """A scheduler retrains on exit 3: a window of one trip (or none) is not drift, it is too small to judge."""
    monkeypatch.setenv("TAXI_DURATION_DATA_DIR", str(tmp_path / "data"))
    too_small = write_parquet(tmp_path / "green_tripdata_2023-01.parquet", trips)
    out = tmp_path / "o"
    code, last = run_cli(
        monkeypatch, capsys, "drift", "--reference", synthetic["still"][0], "--current", too_small, "--out", out
    )
    assert code == 1
    assert last.startswith("error: ")
    assert f"current window is too small to judge: {compared} trips to compare" in last
    assert "at least 2,000 needed (setting drift_min_rows)" in last
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".o")] == []  # no temporary folder left


def test_a_model_folder_that_does_not_exist_is_one_line_exit_2_before_any_window_is_read(
    synthetic: dict[str, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("TAXI_DURATION_DATA_DIR", str(tmp_path / "data"))
    first, second = synthetic["still"]
    out = tmp_path / "o"
    args = ("drift", "--reference", first, "--current", second, "--out", out, "--model", tmp_path / "no-model")
    code, last = run_cli(monkeypatch, capsys, *args)
    assert code == 2
    assert last == f"error: cannot load model '{tmp_path / 'no-model'}': no such folder (nor a models:/ or runs:/ URI)"
    assert not out.exists()


@pytest.mark.spark
def test_duckdb_and_spark_count_alike(synthetic: dict[str, list[Path]], tmp_path: Path, spark: object) -> None:
    # The counts every statistic is built from, on the same validated trips (validation's own parity is
    # tested in test_quality): equal on both engines, bin by bin.
    settings = load_settings(data_dir=tmp_path, spark_master="local[2]", spark_driver_memory="1g")
    duckdb = Runtime.open(settings, Engine.DUCKDB)
    validate(duckdb, check_all([synthetic["drifting"][1]]), tmp_path / "v", features=True)
    counted = {}
    for engine, runtime in ((Engine.DUCKDB, duckdb), (Engine.SPARK, Runtime.open(settings, Engine.SPARK))):
        trips = runtime.scan_parquet(tmp_path / "v" / CLEAN_DIR).filter(in_target_range())
        counted[engine] = {m.column: count_values(trips, m) for m in MEASURES}
        runtime.close()
    for m in MEASURES:
        assert counted[Engine.SPARK][m.column] == counted[Engine.DUCKDB][m.column], m.column
    assert sum(counted[Engine.SPARK][TARGET].values()) > 5_000


# The real months: a model trained on 2023-01 (validated on 2023-02), checked on 2023-03, which it never saw.


@pytest.fixture(scope="module")
def real_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A registry whose champion is a quick `with_distance` model trained on the real 2023-01."""
    settings = store_settings(tmp_path_factory.mktemp("real-store"))
    files = check_all([shared_data / f"green_tripdata_{m}.parquet" for m in ("2023-01", "2023-02", "2023-03")])
    train(settings, files, SPLIT, "with_distance")
    return settings


def _march(shared_data: Path) -> pa.Table:
    return pq.read_table(shared_data / "green_tripdata_2023-03.parquet")


def _drift_with_model(
    settings: Settings,
    reference: Path,
    current: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, dict[str, Any]]:
    monkeypatch.setenv("TAXI_DURATION_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(settings.mlflow_tracking_uri))
    args = ("drift", "--reference", reference, "--current", current, "--out", out, "--model", CHAMPION)
    code, last = run_cli(monkeypatch, capsys, *args)
    return code, last, summary(out)


@pytest.mark.shared
def test_a_random_half_of_a_real_month_against_the_other_is_no_drift(
    real_model: Settings, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    march = _march(shared_data)
    heads = np.random.default_rng(7).random(march.num_rows) < 0.5
    for name, mask in (("a", heads), ("b", ~heads)):
        (tmp_path / name).mkdir()
        pq.write_table(march.filter(pa.array(mask)), tmp_path / name / "green_tripdata_2023-03.parquet")
    code, last, found = _drift_with_model(
        real_model, tmp_path / "a", tmp_path / "b", tmp_path / "o", monkeypatch, capsys
    )
    assert code == 0, last
    assert found["crossed"] == []
    error = next(c for c in found["checks"] if c["name"] == "model_error:rmse")
    assert 0.8 < error["statistic"] < 1.2  # a month it never saw: about its validation error


@pytest.mark.shared
def test_a_real_month_with_trips_60_percent_longer_is_target_drift_and_model_error(
    real_model: Settings, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    march = _march(shared_data)
    pickup, dropoff = march.column("lpep_pickup_datetime"), march.column("lpep_dropoff_datetime")
    micros = pc.round(pc.multiply(pc.subtract(dropoff, pickup).cast(pa.int64()), 1.6)).cast(pa.int64())
    longer = pc.add(pickup, micros.cast(pa.duration("us")))
    slow = march.set_column(march.schema.get_field_index("lpep_dropoff_datetime"), "lpep_dropoff_datetime", longer)
    (tmp_path / "slow").mkdir()
    pq.write_table(slow, tmp_path / "slow" / "green_tripdata_2023-03.parquet")
    reference = shared_data / "green_tripdata_2023-03.parquet"
    code, last, found = _drift_with_model(real_model, reference, tmp_path / "slow", tmp_path / "o", monkeypatch, capsys)
    assert code == 3
    assert "target:duration_min" in last
    assert "model_error:rmse" in last
    assert {"target:duration_min", "model_error:rmse"} <= set(found["crossed"])
    assert not any(name.startswith("feature:") for name in found["crossed"])  # the trips are the same trips


@pytest.mark.shared
def test_a_real_month_with_long_trips_over_represented_is_distance_drift(
    real_model: Settings, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    march = _march(shared_data)
    distance = march.column("trip_distance").to_numpy(zero_copy_only=False)
    # Every trip longer than the median stays, one shorter trip in three: three quarters of the trips are long.
    keep = (distance > np.nanmedian(distance)) | (np.random.default_rng(11).random(march.num_rows) < 1 / 3)
    (tmp_path / "long").mkdir()
    pq.write_table(march.filter(pa.array(keep)), tmp_path / "long" / "green_tripdata_2023-03.parquet")
    reference = shared_data / "green_tripdata_2023-03.parquet"
    code, last, found = _drift_with_model(real_model, reference, tmp_path / "long", tmp_path / "o", monkeypatch, capsys)
    assert code == 3
    distances = {"feature:trip_distance", "feature:haversine_mi", "feature:manhattan_mi"}
    assert distances <= set(found["crossed"])
    assert all(name in last for name in distances)
