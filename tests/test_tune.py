"""The tuned search on small synthetic months: it keeps to its trial cap and budget, prunes, chooses its best
trial's model, and chooses the same again for the same seed; the refit of its choice on both months."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taxi_duration.core import schema as s
from taxi_duration.core.config import Engine, load_settings
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import TARGET
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.train.dataset import Prepared, prepare
from taxi_duration.train.local import columns, raw_predict
from taxi_duration.train.metrics import metrics
from taxi_duration.train.tune import MONTH_DECAY_RANGE, PRUNE_WARMUP_ROUNDS, REPORT_EVERY, Tuned, refit, search
from tests.conftest import SPLIT

TRIALS, ROUNDS = 4, 200  # a trial stops at 200 rounds: seconds per study on these rows


@pytest.fixture(scope="module")
def prepared(raw: list[InputFile], tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    runtime = Runtime.open(load_settings(), Engine.DUCKDB)
    return prepare(runtime, raw, SPLIT, tmp_path_factory.mktemp("tune"))


def study(prepared: Prepared, folder: Path, trials: int = TRIALS, budget_s: float = 300.0) -> Tuned:
    categorical, numeric = columns("with_distance")
    wanted = [*categorical, *numeric, TARGET, s.PICKUP]
    return search(
        prepared.batches("train", wanted, rows=2_000),  # batches straddle the spool's files
        prepared.batches("validate", wanted, rows=2_000),
        prepared.parts["train"].select(*categorical).unique().collect().to_pandas(),
        "with_distance",
        folder,
        trials,
        budget_s,
        max_rounds=ROUNDS,
        batch_rows=1_500,
        newest=SPLIT.train[-1],
    )


@pytest.fixture(scope="module")
def tuned(prepared: Prepared, tmp_path_factory: pytest.TempPathFactory) -> Tuned:
    return study(prepared, tmp_path_factory.mktemp("study") / "spool")


def test_the_study_runs_its_trials_and_its_model_is_its_best_trials(tuned: Tuned, prepared: Prepared) -> None:
    assert [t.number for t in tuned.trials] == list(range(TRIALS))
    assert tuned.summary()["stopped_by"] == "trial cap"
    finished = [t for t in tuned.trials if not t.pruned]
    assert tuned.best == min(finished, key=lambda t: t.validate_rmse)
    model = tuned.pipeline.named_steps["model"]
    assert model.booster_.current_iteration() == tuned.best.rounds <= ROUNDS  # cut at its best round
    assert model.get_params()["learning_rate"] == tuned.best.params["learning_rate"]
    validate = prepared.pandas("validate")
    rmse = metrics(validate[TARGET], raw_predict(tuned.pipeline, validate))["rmse"]
    assert rmse == pytest.approx(tuned.best.validate_rmse, rel=1e-6)  # the study scored the model it returns
    assert {t.month_decay for t in tuned.trials} == {1.0}  # one training month: no older month to weigh


def test_a_trial_behind_the_median_is_pruned_and_recorded_so(tuned: Tuned) -> None:
    pruned = [t for t in tuned.trials if t.pruned]
    assert pruned
    for trial in pruned:
        assert PRUNE_WARMUP_ROUNDS <= trial.rounds < ROUNDS
        assert trial.rounds % REPORT_EVERY == 0
        assert trial.validate_rmse > tuned.best.validate_rmse
    assert tuned.summary()["pruned"] == len(pruned)


def test_the_same_seed_draws_the_same_trials_and_chooses_the_same_model(
    tuned: Tuned, prepared: Prepared, tmp_path: Path
) -> None:
    again = study(prepared, tmp_path / "spool")
    assert [(t.params, t.rounds, t.pruned) for t in again.trials] == [
        (t.params, t.rounds, t.pruned) for t in tuned.trials
    ]
    assert again.best.validate_rmse == tuned.best.validate_rmse
    validate = prepared.pandas("validate").head(1_000)
    np.testing.assert_array_equal(raw_predict(again.pipeline, validate), raw_predict(tuned.pipeline, validate))
    assert not (tmp_path / "spool").exists()  # the spools are gone once the datasets are binned


def test_no_trial_starts_once_the_budget_is_spent(prepared: Prepared, tmp_path: Path) -> None:
    spent = study(prepared, tmp_path / "spool", trials=TRIALS, budget_s=1e-3)
    assert len(spent.trials) == 1  # the first one starts and finishes; the budget is gone by then
    assert spent.summary()["stopped_by"] == "budget"


def test_the_refit_trains_the_chosen_params_on_both_months_with_more_trees(
    tuned: Tuned, prepared: Prepared, tmp_path: Path
) -> None:
    categorical, numeric = columns("with_distance")
    wanted = [*categorical, *numeric, TARGET]
    both = pd.concat([prepared.pandas(role)[categorical] for role in ("train", "validate")])
    refit_model = refit(
        prepared.batches("train", wanted),
        prepared.batches("validate", wanted),
        both,
        "with_distance",
        tmp_path / "spool",
        tuned.best,
        1.5,
    )
    model = refit_model.named_steps["model"]
    assert model.booster_.current_iteration() == round(1.5 * tuned.best.rounds)
    assert model.get_params()["num_leaves"] == tuned.best.params["num_leaves"]
    validate = prepared.pandas("validate")
    seen = metrics(validate[TARGET], raw_predict(refit_model, validate))["rmse"]
    assert seen < tuned.best.validate_rmse  # it learnt from the validation month: its score there is no judge


def test_with_older_months_each_trial_draws_their_weight_and_the_refit_weighs_by_its_choice(
    prepared: Prepared, tmp_path: Path
) -> None:
    categorical, numeric = columns("with_distance")
    wanted = [*categorical, *numeric, TARGET, s.PICKUP]
    now = prepared.pandas("train")[wanted]
    older = now.assign(**{TARGET: 2 * now[TARGET], s.PICKUP: now[s.PICKUP] - pd.DateOffset(months=2)})
    categories = now[categorical].drop_duplicates()
    tuned = search(
        [older, now],
        prepared.batches("validate", wanted),
        categories,
        "with_distance",
        tmp_path / "study",
        3,
        300.0,
        max_rounds=ROUNDS,
        newest=SPLIT.train[-1],
    )
    decays = [t.month_decay for t in tuned.trials]
    assert len(set(decays)) == 3
    assert all(MONTH_DECAY_RANGE[0] <= d <= MONTH_DECAY_RANGE[1] for d in decays)
    assert not any("month_decay" in t.params for t in tuned.trials)  # not a LightGBM parameter

    def refit_mean(decay: float) -> float:
        chosen = replace(tuned.best, month_decay=decay, rounds=30)
        model = refit(
            [older], [now], categories, "with_distance", tmp_path / str(decay), chosen, 1.0, newest=SPLIT.train[-1]
        )
        return float(raw_predict(model, now).mean() / now[TARGET].mean())

    assert refit_mean(1.0) == pytest.approx(1.5, rel=0.02)  # the older month's doubled trips count in full
    assert refit_mean(0.5) == pytest.approx(1.2, rel=0.02)  # two months older, weighed 0.25: (0.25 * 2 + 1) / 1.25
