"""The tuned search (`--search tune`): an Optuna study over LightGBM's main parameters, on the embedded path.

The training rows are binned once (from batches through the spool, never one frame: `train_local.binned`)
and every trial trains on that one dataset; the validation month, binned with the training set's bins, stops
each trial early and prunes a trial whose score falls behind the median trial's at the same round. The
chosen trial's booster, cut at its best round, is the model chosen; the training job then refits its
parameters on the training and validation rows (`refit`). No choice reads the test month.

Optuna is the `tune` extra: only this search needs it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from taxi_duration.core.config import FeatureSet
from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import Month
from taxi_duration.train import local as train_local

# A trial stops when its validation RMSE has not improved for `EARLY_STOPPING` rounds, and after `MAX_ROUNDS`.
MAX_ROUNDS = 3000
EARLY_STOPPING = 50
# Every `REPORT_EVERY` rounds a trial reports its validation RMSE to the study, which prunes it when it is
# worse than the median of the finished trials at that round; not before `PRUNE_STARTUP_TRIALS` trials have
# finished, nor in a trial's first `PRUNE_WARMUP_ROUNDS` rounds (a fast learning rate leads early).
REPORT_EVERY = 10
PRUNE_STARTUP_TRIALS = 2
PRUNE_WARMUP_ROUNDS = 100
# On top of every trial's parameters: the study scores RMSE, and the dataset binned once serves every trial.
# LightGBM drops features that cannot split under the dataset's `min_child_samples` when it bins them; with
# that off, each trial may set its own (the bins, `max_bin` and `min_data_in_bin`, stay those of LGBM_PARAMS).
FIXED = {"metric": "rmse", "feature_pre_filter": False}
# When the training rows span several months, the study also draws how much less each older month weighs
# (`month_decay`: a row `a` months older than the newest training month weighs `month_decay ** a`).
MONTH_DECAY_RANGE = (0.5, 1.0)


def suggest(trial: Any) -> dict[str, Any]:
    """One trial's LightGBM parameters (scikit-learn's names), drawn by the study: the search space."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 15, 255, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 300, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        "min_split_gain": trial.suggest_float("min_split_gain", 0.0, 1.0),
    }


@dataclass
class Trial:
    """One trial: its parameters, its validation RMSE at its best round (or, pruned, at the last round it
    reported) and that round, and when it ran (seconds since the epoch)."""

    number: int
    params: dict[str, Any]
    validate_rmse: float
    rounds: int
    pruned: bool
    started_at: float
    ended_at: float
    month_decay: float = 1.0  # the weight of each older month (1: every month the same; not a LightGBM parameter)
    where: str = ""  # on Spark, the executor process the trial ran in (host:pid)

    @property
    def duration_s(self) -> float:
        """Seconds the trial took."""
        return self.ended_at - self.started_at


@dataclass
class Tuned:
    """The study's outcome: the chosen model, its trial, every trial in order, and the study's settings."""

    pipeline: Pipeline
    best: Trial
    trials: list[Trial]
    seed: int
    trial_cap: int
    budget_s: float
    wall_s: float

    def summary(self) -> dict[str, Any]:
        """The study in numbers, for the training run (`summarize`)."""
        return summarize(self.best, self.trials, self.seed, self.trial_cap, self.budget_s, self.wall_s)


def summarize(
    best: Trial, trials: list[Trial], seed: int, trial_cap: int, budget_s: float, wall_s: float
) -> dict[str, Any]:
    """A study in numbers, for the training run: what ran, what was pruned, what won, and why it stopped."""
    return {
        "trials": len(trials),
        "pruned": sum(t.pruned for t in trials),
        "best_trial": best.number,
        "best_validate_rmse": best.validate_rmse,
        "best_rounds": best.rounds,
        "wall_s": wall_s,
        "seed": seed,
        "trial_cap": trial_cap,
        "budget_s": budget_s,
        "stopped_by": "trial cap" if len(trials) >= trial_cap else "budget",
        "history": [{**asdict(t), "duration_s": t.duration_s} for t in trials],
    }


def optuna_module() -> Any:
    """Optuna, or a UsageError that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise UsageError(
            "--search tune needs Optuna: pip install 'taxi-duration-predictor[tune]' (`make setup` installs it)"
        ) from None
    return optuna


def search(
    train_batches: Iterable[pd.DataFrame],
    validate_batches: Iterable[pd.DataFrame],
    categories: pd.DataFrame,
    feature_set: FeatureSet,
    folder: Path,
    trials: int,
    budget_s: float,
    seed: int = 0,
    max_rounds: int = MAX_ROUNDS,
    on_trial: Callable[[int, int], None] | None = None,
    batch_rows: int = 100_000,
    newest: Month | None = None,
) -> Tuned:
    """Run the study: at most `trials` trials, none started after `budget_s` seconds, drawn by a TPE sampler
    seeded with `seed` (the same rows and seed give the same trials while the budget does not cut them).

    `categories` is `train_local.fit_batches`'s; `folder` (new) holds the spools while the datasets are
    binned, then is removed. The budget counts from the first trial, after the binning. `on_trial(done,
    trials)` is called as each trial ends. `newest`, the newest training month of a time split: when the
    training rows hold older months too, each trial also draws their `month_decay`.
    """
    optuna = optuna_module()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial would break the progress bar
    started = time.time()
    pipeline = train_local.encoder(categories, feature_set, seed)
    base = _lightgbm_params(feature_set, seed)
    binned = _binned(train_batches, validate_batches, pipeline, feature_set, folder, base, batch_rows, newest)
    objective = _Objective(optuna, *binned, feature_set, seed, max_rounds)
    study = _study(optuna, seed)
    progress = [] if on_trial is None else [lambda study, trial: on_trial(len(objective.done), trials)]
    study.optimize(objective, n_trials=trials, timeout=budget_s, callbacks=progress)
    best = next(t for t in objective.done if t.number == study.best_trial.number)
    pipeline.named_steps["model"].set_params(**best.params, n_estimators=best.rounds)
    assert objective.kept is not None, "the best trial finished, so its booster was kept"
    train_local.fitted(pipeline, objective.kept[1])
    return Tuned(pipeline, best, objective.done, seed, trials, budget_s, time.time() - started)


def _binned(
    train_batches: Iterable[pd.DataFrame],
    validate_batches: Iterable[pd.DataFrame],
    pipeline: Pipeline,
    feature_set: FeatureSet,
    folder: Path,
    base: dict[str, Any],
    batch_rows: int,
    newest: Month | None,
) -> tuple[lgb.Dataset, lgb.Dataset, np.ndarray]:
    """The training and validation datasets, binned once through spools in `folder` (removed after), and each
    training row's age in months before `newest` (none without it)."""
    ages: list[np.ndarray] = []
    if newest is not None:
        train_batches = _recording(train_batches, train_local.month_ages(newest), ages)
    train_set = train_local.binned(train_batches, pipeline, feature_set, folder / "train", base, batch_rows)
    age = np.concatenate(ages) if ages else np.zeros(0)
    validate_set = train_local.binned(
        validate_batches, pipeline, feature_set, folder / "validate", base, batch_rows, reference=train_set
    )
    folder.rmdir()  # both spools are gone: the datasets are binned
    return train_set, validate_set, age


def _study(optuna: Any, seed: int) -> Any:
    """A study that minimizes the validation RMSE: a TPE sampler seeded with `seed`, a median pruner."""
    return optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNE_STARTUP_TRIALS, n_warmup_steps=PRUNE_WARMUP_ROUNDS, interval_steps=REPORT_EVERY
        ),
    )


@dataclass
class _Objective:
    """What the study calls for each trial: it draws the trial's parameters, trains on the binned rows until the
    validation month stops improving (or the study prunes the trial), and records the trial in `done`. `kept`
    is the best finished trial's RMSE and booster, cut at its best round."""

    optuna: Any
    train_set: lgb.Dataset
    validate_set: lgb.Dataset
    age: np.ndarray
    feature_set: FeatureSet
    seed: int
    max_rounds: int
    done: list[Trial] = field(default_factory=list)
    kept: tuple[float, lgb.Booster] | None = None

    def __call__(self, trial: Any) -> float:
        chosen = suggest(trial)
        params = _lightgbm_params(self.feature_set, self.seed, **chosen)
        decay = 1.0
        if self.age.any():
            decay = trial.suggest_float("month_decay", *MONTH_DECAY_RANGE)
            # Set on every trial, ones included: LightGBM cannot take a dataset's weights back to none.
            self.train_set.set_field("weight", (decay**self.age).astype(np.float32))
        reported: list[tuple[int, float]] = []
        begun = time.time()
        try:
            booster = lgb.train(
                params,
                self.train_set,
                num_boost_round=self.max_rounds,
                valid_sets=[self.validate_set],
                valid_names=["validate"],
                callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False), self._reporter(trial, reported)],
            )
        except self.optuna.TrialPruned:
            rounds, rmse = reported[-1]
            self.done.append(Trial(trial.number, chosen, rmse, rounds, True, begun, time.time(), decay))
            raise
        rmse, rounds = booster.best_score["validate"]["rmse"], booster.best_iteration
        self.done.append(Trial(trial.number, chosen, rmse, rounds, False, begun, time.time(), decay))
        if self.kept is None or rmse < self.kept[0]:
            self.kept = (rmse, lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds)))
        return rmse

    def _reporter(self, trial: Any, reported: list[tuple[int, float]]) -> Callable[[lgb.callback.CallbackEnv], None]:
        """A LightGBM callback that reports the validation RMSE to the study every `REPORT_EVERY` rounds (noted in
        `reported`) and stops the trial when the study prunes it."""

        def report(env: lgb.callback.CallbackEnv) -> None:
            rounds, results = env.iteration + 1, env.evaluation_result_list
            if rounds % REPORT_EVERY == 0 and results:
                rmse = results[0][2]  # the one metric on the one validation set
                reported.append((rounds, rmse))
                trial.report(rmse, rounds)
                if trial.should_prune():
                    raise self.optuna.TrialPruned(f"validation RMSE {rmse:.4f} after {rounds} rounds")

        return report


def _recording(
    batches: Iterable[pd.DataFrame], measure: Callable[[pd.DataFrame], np.ndarray], into: list[np.ndarray]
) -> Iterator[pd.DataFrame]:
    """`batches`, passed on unchanged, each one `measure`d into `into` on the way."""
    for batch in batches:
        into.append(measure(batch))
        yield batch


def _lightgbm_params(feature_set: FeatureSet, seed: int, **chosen: Any) -> dict[str, Any]:
    """What `lgb.train` takes for LGBM_PARAMS with `chosen` over them (as `LGBMRegressor.fit` resolves them)."""
    model = train_local.build(feature_set, seed, **chosen).named_steps["model"]
    return {**model._process_params(stage="fit"), **FIXED}


def refit(
    train_batches: Iterable[pd.DataFrame],
    validate_batches: Iterable[pd.DataFrame],
    categories: pd.DataFrame,
    feature_set: FeatureSet,
    folder: Path,
    best: Trial,
    tree_scale: float,
    seed: int = 0,
    on_round: Callable[[int, int], None] | None = None,
    newest: Month | None = None,
) -> Pipeline:
    """The chosen trial's parameters trained again on the training rows and then the validation rows, with its
    best round count times `tree_scale` trees (more rows bear more rounds before they overfit). With `newest`
    (the validation month), older months weigh the chosen trial's `month_decay` per month of age.

    `categories` covers both months (`train_local.fit_batches`): a zone first seen in the validation month
    gets its own code. The refit has seen the validation month, so its score there is no judge of it.
    """
    trees = max(1, round(best.rounds * tree_scale))
    batches = itertools.chain(train_batches, validate_batches)
    weigh = train_local.month_weights(newest, best.month_decay)
    return train_local.fit_batches(
        batches, categories, feature_set, folder, seed, on_round, weigh=weigh, **best.params, n_estimators=trees
    )
