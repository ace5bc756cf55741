"""The reader and validator on the real TLC files in ../shared/data: counts reconcile, engines agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taxi_duration.core.config import Engine, load_settings
from taxi_duration.core.errors import BadInputError
from taxi_duration.engines.frames import Runtime
from taxi_duration.ingest.inputs import check, check_all, discover
from taxi_duration.ingest.quality import validate
from tests.conftest import ALL_ENGINES

pytestmark = pytest.mark.shared


@pytest.mark.parametrize("runtime", [ALL_ENGINES[0]], indirect=True)
def test_every_green_month_reconciles(runtime: Runtime, shared_data: Path, tmp_path: Path) -> None:
    files = check_all(discover([str(shared_data / "green_tripdata_*.parquet")]))
    assert len(files) == 8
    report = validate(runtime, files, tmp_path / "out")
    assert report.input_rows == 556_585  # the sum of the eight months' published row counts
    assert report.clean_rows + report.quarantined_rows == report.input_rows
    # What the shared README says the real files get wrong is found here too.
    assert report.by_reason["duration_too_short"] > 0
    assert report.by_reason["pickup_outside_month"] > 0
    assert report.by_reason["unknown_zone"] > 0
    assert report.by_reason["huge_distance"] > 0
    assert report.repaired["passenger_count_defaulted"] > 0
    assert 0.85 < report.clean_rows / report.input_rows < 0.99


TWO_ERAS = ("green_tripdata_2023-01.parquet", "green_tripdata_2023-02.parquet")  # before and after a schema change


def counts(runtime: Runtime, shared_data: Path, out: Path) -> dict[str, Any]:
    """What validating the two months reports, without timings or paths."""
    report = validate(runtime, check_all([shared_data / name for name in TWO_ERAS]), out).to_dict()
    return {k: report[k] for k in ("input_rows", "clean_rows", "quarantined_rows", "by_reason", "repaired")}


@pytest.fixture(scope="module")
def embedded_counts(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The embedded engine's counts, which every engine must match (computed here, whatever runs first)."""
    runtime = Runtime.open(load_settings(data_dir=tmp_path_factory.mktemp("data")), Engine.DUCKDB)
    try:
        return counts(runtime, shared_data, tmp_path_factory.mktemp("embedded") / "out")
    finally:
        runtime.close()


@pytest.mark.parametrize("runtime", ALL_ENGINES[1:], indirect=True)  # the others against the embedded one
def test_engines_agree_on_two_schema_eras(
    runtime: Runtime, shared_data: Path, tmp_path: Path, embedded_counts: dict[str, Any]
) -> None:
    found = counts(runtime, shared_data, tmp_path / "out")
    assert found["input_rows"] == 68_211 + 64_809
    assert found == embedded_counts


@pytest.mark.parametrize("runtime", ALL_ENGINES, indirect=True)
def test_yellow_csv_sample_validates(runtime: Runtime, shared_data: Path, tmp_path: Path) -> None:
    files = check_all([shared_data / "yellow_tripdata_2019-06_sample1000.csv"])
    report = validate(runtime, files, tmp_path / "out")
    assert report.input_rows == 1000 == report.clean_rows + report.quarantined_rows
    assert report.files[0]["service"] == "yellow"


def test_a_file_without_distance_or_coordinates_is_refused_by_name(shared_data: Path) -> None:
    name = "fhvhv_tripdata_2019-08_sample40k.csv"  # for-hire trips: zones, but no distance at all
    with pytest.raises(BadInputError, match=rf"{name}: not trip data: missing required column\(s\) trip_distance"):
        check(shared_data / name)
