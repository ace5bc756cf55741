"""The feature store: no row ever sees its own duration, windows are honoured, fallbacks in order."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from taxi_duration.core import schema as s
from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import Month
from taxi_duration.engines.frames import Runtime
from taxi_duration.features import store as fs
from tests.conftest import FAST_ENGINES, feature_trips, featurized, online_features, write_parquet

JAN = Month(2023, 1)


def build(
    runtime: Runtime, rows: list[dict[str, Any]], root: Path, start: Month = JAN, end: Month = JAN
) -> fs.FeatureStore:
    path = write_parquet(root / "in" / "green_tripdata_2023-01.parquet", rows)
    return fs.build(runtime, featurized(runtime, path), start, end, root / "store")


def attached(runtime: Runtime, rows: list[dict[str, Any]], store: fs.FeatureStore, root: Path) -> list[dict[str, Any]]:
    path = write_parquet(root / "rows" / "green_tripdata_2023-01.parquet", rows)
    frame = fs.attach(featurized(runtime, path), store, store.tables(runtime))
    return frame.sort(s.PICKUP).collect().to_arrow().to_pylist()


def test_a_training_row_never_sees_its_own_duration(runtime: Runtime, tmp_path: Path) -> None:
    rows = feature_trips()
    changed = list(rows)
    victim = 12  # pickup zone 74 -> 75, a pair with ten trips
    changed[victim] = {
        **rows[victim],
        "lpep_dropoff_datetime": rows[victim]["lpep_pickup_datetime"] + timedelta(hours=2),
    }

    before = attached(runtime, rows, build(runtime, rows, tmp_path / "a"), tmp_path / "a")
    after_store = build(runtime, changed, tmp_path / "b")
    after = attached(runtime, changed, after_store, tmp_path / "b")

    for name in fs.STORE_FEATURES:
        assert before[victim][name] == after[victim][name], name
    # The change is visible to the rest of the pair and to anyone outside the window: the test can fail.
    same_pair = [i for i, r in enumerate(before) if r["zone_pair"] == before[victim]["zone_pair"] and i != victim]
    assert any(before[i]["fs_pair_mean_min"] != after[i]["fs_pair_mean_min"] for i in same_pair)
    request = {**rows[victim], "lpep_pickup_datetime": rows[victim]["lpep_pickup_datetime"] + timedelta(days=40)}
    before_store = fs.FeatureStore.open(next((tmp_path / "a" / "store").iterdir()))
    assert (
        online_features(request, before_store)["fs_pair_mean_min"]
        < online_features(request, after_store)["fs_pair_mean_min"]
    )


def test_rows_outside_the_window_are_ignored(runtime: Runtime, tmp_path: Path) -> None:
    january = build(runtime, feature_trips(), tmp_path / "a")
    with_february = build(runtime, feature_trips() + feature_trips(timedelta(days=31)), tmp_path / "b")
    assert with_february.manifest.version == january.manifest.version
    assert with_february.manifest.rows == january.manifest.rows == 60


def test_versions_and_manifest(runtime: Runtime, tmp_path: Path) -> None:
    store = build(runtime, feature_trips(), tmp_path)
    again = build(runtime, feature_trips(), tmp_path)
    assert again.path == store.path
    manifest = json.loads((store.path / "manifest.json").read_text())
    assert (manifest["window_start"], manifest["window_end"], manifest["rows"]) == ("2023-01", "2023-02", 60)
    assert manifest["rows_by_level"]["global"] == fs.FOLDS + 1
    wider = build(runtime, feature_trips(), tmp_path / "wide", JAN, Month(2023, 2))
    assert wider.manifest.version != store.manifest.version
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [store.manifest.version]


def test_fallbacks_go_from_pair_to_zone_to_borough_to_global(runtime: Runtime, tmp_path: Path) -> None:
    store = build(runtime, feature_trips(), tmp_path)
    future = {"lpep_pickup_datetime": "2023-03-01T10:00:00", "trip_distance": 1.0}
    known_pair = online_features({**future, "PULocationID": 74, "DOLocationID": 75}, store)
    rare_pair = online_features({**future, "PULocationID": 74, "DOLocationID": 43}, store)
    unseen_zone = online_features({**future, "PULocationID": 237, "DOLocationID": 75}, store)
    unseen_borough = online_features({**future, "PULocationID": 5, "DOLocationID": 6}, store)
    assert [f["fs_pair_level"] for f in (known_pair, rare_pair, unseen_zone, unseen_borough)] == [0, 1, 2, 3]
    assert known_pair["fs_pair_trips"] == 10
    assert unseen_borough["fs_pair_trips"] == 0
    assert unseen_borough["fs_pair_median_min"] == unseen_borough["fs_zone_hour_median_min"]  # both global


def test_an_empty_window_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no trips picked up in 2022-06\.\.2022-06"):
        build(runtime, feature_trips(), tmp_path, Month(2022, 6), Month(2022, 6))
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def test_opening_a_folder_that_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a feature store"):
        fs.FeatureStore.open(tmp_path)


@pytest.mark.parametrize("runtime", FAST_ENGINES, indirect=True)
def test_the_same_trips_in_another_order_give_the_same_store(runtime: Runtime, tmp_path: Path) -> None:
    # A float sum depends on the order it adds in, which an engine's threads do not fix: the store's means
    # must not, or two trainings on the same files give different models. Spark evaluates the same
    # expressions (it failed here too before the fix), but its two builds cost 28 s of the suite.
    stores = [
        build(runtime, trips, tmp_path / name) for name, trips in (("a", feature_trips()), ("b", feature_trips()[::-1]))
    ]
    assert stores[0].manifest.version == stores[1].manifest.version
    for level in fs.LEVELS:
        columns, order = [*level.keys, fs.FOLD_COL, *fs.STATS], [(k, "ascending") for k in (*level.keys, fs.FOLD_COL)]
        a, b = (pq.read_table(f.path / f"{level.name}.parquet", columns=columns).sort_by(order) for f in stores)
        assert a.equals(b), level.name
