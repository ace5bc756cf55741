"""The traditional pipeline on a small synthetic split: prepared without leakage, and better than the mean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from taxi_duration.core import schema as s
from taxi_duration.core.config import Engine, load_settings
from taxi_duration.core.months import Month, parse_months
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import TARGET, TARGET_RANGE
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ingest.synth import generate
from taxi_duration.train.baselines import GlobalMean
from taxi_duration.train.dataset import Prepared, prepare, sample_batches
from taxi_duration.train.local import TREE_BLOCK, columns, fit, fit_batches, month_weights, predict, raw_predict
from taxi_duration.train.metrics import metrics
from taxi_duration.train.splits import TimeSplit


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    root = tmp_path_factory.mktemp("split")
    generate(60_000, parse_months("2023-01..2023-03"), root / "raw", seed=1)
    runtime = Runtime.open(load_settings(), Engine.DUCKDB)
    split = TimeSplit.last_two_held_out(parse_months("2023-01..2023-03"))
    return prepare(runtime, check_all(discover([root / "raw"])), split, root / "work")


def test_each_part_holds_only_its_months_clean_rows(prepared: Prepared) -> None:
    for role, month in (("train", 1), ("validate", 2), ("test", 3)):
        frame = prepared.pandas(role)
        assert set(frame["pickup_month"]) == {month}
        assert 0.9 * prepared.quality[role].clean_rows < len(frame) <= prepared.quality[role].clean_rows
        assert frame[TARGET].between(*TARGET_RANGE).all()
    assert prepared.store.manifest.window_start == "2023-01"
    assert prepared.store.manifest.window_end == "2023-02"


@pytest.mark.parametrize("feature_set", ["with_distance", "pretrip"])
def test_lightgbm_beats_the_global_mean(prepared: Prepared, feature_set: str) -> None:
    train, val = prepared.pandas("train"), prepared.pandas("validate")
    model = fit(train, feature_set, n_estimators=100)
    ours = metrics(val[TARGET], predict(model, val))
    mean = metrics(val[TARGET], GlobalMean().fit(train).predict(val))
    assert ours["rmse"] < 0.9 * mean["rmse"]
    assert (predict(model, val) >= 0).all()


def test_distance_moves_the_with_distance_model_but_not_pretrip(prepared: Prepared) -> None:
    train, val = prepared.pandas("train"), prepared.pandas("validate").head(500)
    longer = val.assign(trip_distance=val["trip_distance"] * 3)
    with_distance, pretrip = fit(train, "with_distance", n_estimators=100), fit(train, "pretrip", n_estimators=100)
    assert predict(with_distance, longer).mean() > predict(with_distance, val).mean()
    assert (predict(pretrip, longer) == predict(pretrip, val)).all()


def test_trees_walked_a_block_at_a_time_predict_what_one_walk_does(prepared: Prepared) -> None:
    train, val = prepared.pandas("train"), prepared.pandas("validate")
    rounds: list[tuple[int, int]] = []
    trees = 2 * TREE_BLOCK + 7  # the last block is a short one
    model = fit(train, "with_distance", n_estimators=trees, on_round=lambda done, total: rounds.append((done, total)))
    assert rounds == [(done, trees) for done in range(1, trees + 1)]
    np.testing.assert_allclose(raw_predict(model, val), model.predict(val), rtol=0, atol=1e-9)


def test_the_batched_fit_is_the_in_memory_fit(prepared: Prepared, tmp_path: Path) -> None:
    categorical, numeric = columns("with_distance")
    # Read 7,000 rows at a time, spooled 5,000 at a time: LightGBM's slices straddle the batches read.
    batches = prepared.batches("train", [*categorical, *numeric, TARGET], rows=7_000)
    categories = prepared.parts["train"].select(*categorical).unique().collect().to_pandas()
    # Bins from a sample of 5,000 of the ~18,000 rows, as a big part's bins come from 200,000 of its rows.
    small = {"n_estimators": 30, "bin_construct_sample_cnt": 5_000}
    batched = fit_batches(batches, categories, "with_distance", tmp_path / "spool", batch_rows=5_000, **small)
    whole = fit(prepared.pandas("train"), "with_distance", **small)
    val = prepared.pandas("validate")
    np.testing.assert_array_equal(predict(batched, val), predict(whole, val))
    assert not (tmp_path / "spool").exists()  # the spool is gone once LightGBM has binned it


def test_older_months_weigh_month_decay_per_month_of_age_and_the_fit_follows_the_newest(
    prepared: Prepared, tmp_path: Path
) -> None:
    newest = Month(2023, 1)
    pickups = pd.Series(pd.to_datetime(["2022-11-30 23:00", "2022-12-01 00:00", "2023-01-15 12:00"]), name=s.PICKUP)
    assert month_weights(newest, 0.5)(pickups.to_frame()).tolist() == [0.25, 0.5, 1.0]
    # The same trips twice: a month ago taking twice as long, and now. Weighted down, the old month counts less.
    categorical, numeric = columns("with_distance")
    now = prepared.pandas("train")[[*categorical, *numeric, TARGET, s.PICKUP]]
    before = now.assign(**{TARGET: 2 * now[TARGET], s.PICKUP: now[s.PICKUP] - pd.DateOffset(months=1)})
    categories = now[categorical].drop_duplicates()

    def mean_prediction(decay: float) -> float:
        weigh = month_weights(newest, decay)
        folder = tmp_path / str(decay)
        pipeline = fit_batches([before, now], categories, "with_distance", folder, weigh=weigh, n_estimators=30)
        return float(raw_predict(pipeline, now).mean() / now[TARGET].mean())

    assert mean_prediction(1.0) == pytest.approx(1.5, rel=0.02)  # both months alike: halfway
    assert mean_prediction(0.25) == pytest.approx(1.2, rel=0.02)  # (0.25 * 2 + 1) / 1.25


def test_a_sample_of_batches_keeps_that_many_rows_in_their_order(prepared: Prepared) -> None:
    whole = prepared.pandas("validate")
    drawn = [pd.concat(sample_batches(prepared.batches("validate", rows=3_000), len(whole), 1_000)) for _ in (1, 2)]
    pd.testing.assert_frame_equal(drawn[0], drawn[1])  # the same for a seed
    picked = whole.reset_index(drop=True).reset_index().merge(drawn[0], on=list(whole.columns))["index"]
    assert len(picked) == len(drawn[0]) == 1_000
    assert picked.is_monotonic_increasing
    assert picked.max() > len(whole) / 2


def test_openmp_threads_wait_asleep_unless_the_user_says_otherwise() -> None:
    # Spinning threads burned 10x the CPU of a training on a busy machine (taxi_duration/__init__.py).
    def policy(**env: str) -> str:
        clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        code = "import os, taxi_duration; print(os.environ['OMP_WAIT_POLICY'])"
        done = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
        return done.stdout.strip()

    assert policy() == "PASSIVE"
    assert policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_a_part_is_sorted_under_the_spill_bound_and_the_engine_unbound_after(prepared: Prepared) -> None:
    def limit() -> str:  # the database's setting, seen from a second connection while the first streams
        return str(prepared.runtime.native.cursor().execute("SELECT current_setting('memory_limit')").fetchone()[0])

    unbounded = limit()
    batches = prepared.batches("train", [TARGET], rows=1_000)
    first = next(batches)
    assert limit() != unbounded  # the whole part's sort ran under it: at 45M rows it took 13 GiB unbounded
    rest = list(batches)
    assert limit() == unbounded
    assert len(first) + sum(map(len, rest)) == len(prepared.pandas("train"))
    stopped = prepared.batches("train", [TARGET], rows=1_000)
    next(stopped)
    stopped.close()  # a caller that stops early: the reader is closed, then the bound lifted
    assert limit() == unbounded


class Rows(lgb.Sequence):
    """Rows as the spool hands them to LightGBM: a Sequence read in batches."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows, self.batch_size = rows, 1000

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)


def test_lightgbm_says_nothing_on_the_screen_when_it_bins_many_categories(capfd: pytest.CaptureFixture[str]) -> None:
    """Binned from a Sequence (as `binned` does), LightGBM warned about categorical bins on every run, even at
    verbosity -1: its native messages go to a logger below the level anything shows."""
    rng = np.random.default_rng(0)
    rows = np.column_stack([rng.integers(0, 400, 5_000), rng.random(5_000)]).astype(np.float64)
    lgb.Dataset(Rows(rows), rng.random(5_000), categorical_feature=[0], params={"verbose": -1}).construct()
    out, err = capfd.readouterr()
    assert "[LightGBM]" not in out + err
