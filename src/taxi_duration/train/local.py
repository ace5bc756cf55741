"""The traditional pipeline: scikit-learn preprocessing and a LightGBM model, on one machine.

Its input is the embedded engine's output (`dataset.prepare`), as pandas frames: one frame (`fit`), or
batches that are never one frame (`fit_batches`, which the training job uses; the same model from the
same rows). Categorical features are ordinal-encoded by scikit-learn (unseen categories become -1, which
LightGBM treats as missing) and given to LightGBM as categories; numbers pass through.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import narwhals as nw
import numpy as np
import pandas as pd
from lightgbm import LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from taxi_duration.core import schema as s
from taxi_duration.core.config import FeatureSet
from taxi_duration.core.months import Month
from taxi_duration.features import store as fs
from taxi_duration.features.definitions import BY_NAME, FEATURE_SETS, TARGET
from taxi_duration.train.spool import Spool

# LightGBM's native messages reach this logger's `info`, below the level anything shows: its dataset built
# from a Sequence warns about categorical bins on every run even at verbosity -1, which no user can act on.
# Its Python-side warnings stay warnings, and its errors are exceptions.
lgb.register_logger(logging.getLogger("taxi_duration.lightgbm"))

# Chosen once on 2023-01 -> 2023-02 (validation), never on a test month; see docs when training lands.
LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 600,
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "verbose": -1,
    # Same rows in, same model out, whatever the thread scheduling.
    "deterministic": True,
    # Column-wise histograms, never LightGBM's timed guess between the two (which is not deterministic): the
    # row-wise layout keeps a second, row-major copy of the bins, 133 bytes a training row against 61 on 3M
    # synthetic trips (the same model: equal validation RMSE to the last digit).
    "force_col_wise": True,
}


# LightGBM walks all of its trees for one row before it starts the next. 600 deep trees with category bitsets
# (a zone pair has thousands of values) do not stay in the CPU's cache that way: on 300,000 synthetic trips,
# walking 50 trees over every row, then the next 50, predicted 4x faster than one walk per row.
TREE_BLOCK = 50


def columns(feature_set: FeatureSet) -> tuple[list[str], list[str]]:
    """(categorical, numeric) model inputs of a feature set, store features included."""
    names = FEATURE_SETS[feature_set]
    categorical = [n for n in names if BY_NAME[n].categorical]
    numeric = [n for n in names if not BY_NAME[n].categorical] + list(fs.STORE_FEATURES)
    return categorical, numeric


def build(feature_set: FeatureSet, seed: int = 0, **params: Any) -> Pipeline:
    """An unfitted pipeline for `feature_set`."""
    categorical, numeric = columns(feature_set)
    encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    prepare = ColumnTransformer(
        [("categorical", encode, categorical), ("numeric", "passthrough", numeric)],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    # The bin sample's seed, set by name: a dataset built from batches keeps only its own parameters, where the
    # `seed` that random_state becomes does not reach it; both fits then draw the same sample.
    model = LGBMRegressor(**{**LGBM_PARAMS, **params, "random_state": seed, "data_random_seed": seed})
    return Pipeline([("prepare", prepare), ("model", model)])


def fit(
    train: pd.DataFrame,
    feature_set: FeatureSet,
    seed: int = 0,
    on_round: Callable[[int, int], None] | None = None,
    **params: Any,
) -> Pipeline:
    """Fit the pipeline on training rows (their `duration_min` is the target); `on_round(done, total)` is
    called after each boosting round."""
    pipeline = build(feature_set, seed, **params)
    categorical, _ = columns(feature_set)
    rounds = [] if on_round is None else [lambda env: on_round(env.iteration + 1, env.end_iteration)]
    pipeline.fit(train, train[TARGET].to_numpy(), model__categorical_feature=categorical, model__callbacks=rounds)
    return pipeline


def fit_batches(
    batches: Iterable[pd.DataFrame],
    categories: pd.DataFrame,
    feature_set: FeatureSet,
    folder: Path,
    seed: int = 0,
    on_round: Callable[[int, int], None] | None = None,
    batch_rows: int = 100_000,
    weigh: Callable[[pd.DataFrame], np.ndarray] | None = None,
    **params: Any,
) -> Pipeline:
    """Fit the pipeline `fit` fits, on training rows that arrive in batches, without holding them at once.

    `categories` holds the categorical features of rows among which is every value each of them takes in the
    training rows (their distinct combinations, say): the encoder fitted on it is the one `fit` fits on all
    the rows, as it only keeps the sorted distinct values. Each batch is encoded and spooled to `folder` (a
    new folder: `binned`). Same rows in the same order give the same model. `weigh(batch)`, when given, is
    the weight of each of a batch's rows (`month_weights`).
    """
    pipeline = encoder(categories, feature_set, seed, **params)
    # The parameters LGBMRegressor.fit would train with (aliases resolved, seed and threads set).
    train_params = pipeline.named_steps["model"]._process_params(stage="fit")
    dataset = binned(batches, pipeline, feature_set, folder, train_params, batch_rows, weigh=weigh)
    rounds = [] if on_round is None else [lambda env: on_round(env.iteration + 1, env.end_iteration)]
    trees = pipeline.named_steps["model"].n_estimators
    booster = lgb.train(train_params, dataset, num_boost_round=trees, callbacks=rounds)
    booster.free_dataset()
    fitted(pipeline, booster)
    return pipeline


def encoder(categories: pd.DataFrame, feature_set: FeatureSet, seed: int = 0, **params: Any) -> Pipeline:
    """The pipeline `build` makes, its encoding step fitted on `categories` (see `fit_batches`), its model not."""
    pipeline = build(feature_set, seed, **params)
    categorical, numeric = columns(feature_set)
    prepare = pipeline.named_steps["prepare"]
    prepare.fit(categories[categorical].assign(**dict.fromkeys(numeric, 0.0)))  # numbers only pass through
    return pipeline


def binned(
    batches: Iterable[pd.DataFrame],
    pipeline: Pipeline,
    feature_set: FeatureSet,
    folder: Path,
    params: dict[str, Any],
    batch_rows: int = 100_000,
    reference: lgb.Dataset | None = None,
    weigh: Callable[[pd.DataFrame], np.ndarray] | None = None,
) -> lgb.Dataset:
    """LightGBM's binned dataset of rows that arrive in batches, encoded by `pipeline`'s fitted first step.

    Each batch is encoded and spooled to `folder` (a new folder); LightGBM bins its dataset from its sample of
    the spool (or takes the bins of `reference`, a training set, for a validation set) and reads it back a
    batch at a time. The spool is removed once the dataset is binned. `weigh(batch)`: the rows' weights.
    """
    prepare = pipeline.named_steps["prepare"]
    categorical, _ = columns(feature_set)
    spool = Spool(folder, batch_rows)
    weights: list[np.ndarray] = []
    for batch in batches:
        spool.append(prepare.transform(batch).to_numpy(np.float64), batch[TARGET].to_numpy(np.float64))
        if weigh is not None:
            weights.append(weigh(batch))
    rows = spool.close()
    dataset = lgb.Dataset(
        rows,
        label=rows.labels,
        weight=np.concatenate(weights, dtype=np.float32) if weights else None,  # what LightGBM keeps
        feature_name=list(prepare.get_feature_names_out()),
        categorical_feature=categorical,
        params=params,
        reference=reference,
    )
    dataset.construct()  # binned: the spool is read
    shutil.rmtree(folder)
    return dataset


def month_age(newest: Month) -> nw.Expr:
    """A row's age: the months between its pickup and `newest` (0 for a trip in `newest`). One expression for
    the embedded engines' pandas batches and Spark's frames."""
    pickup = nw.col(s.PICKUP).dt
    return newest.year * 12 + newest.month - (pickup.year() * 12 + pickup.month())


def month_weight(newest: Month, decay: float) -> nw.Expr:
    """A row's weight: `decay` to the power of its `month_age` (1 in `newest`)."""
    return nw.lit(decay) ** month_age(newest).cast(nw.Float64)


def month_ages(newest: Month) -> Callable[[pd.DataFrame], np.ndarray]:
    """A batch's rows' ages (`month_age`)."""
    return lambda batch: _evaluated(batch, month_age(newest))


def month_weights(newest: Month | None, decay: float) -> Callable[[pd.DataFrame], np.ndarray] | None:
    """A batch's rows' weights (`month_weight`); None when every row weighs the same (`decay` 1, or no month to
    count from)."""
    if newest is None or decay == 1.0:
        return None
    return lambda batch: _evaluated(batch, month_weight(newest, decay))


def _evaluated(batch: pd.DataFrame, expression: nw.Expr) -> np.ndarray:
    return (
        nw.from_native(batch, eager_only=True)
        .select(expression.alias("_"))
        .get_column("_")
        .to_numpy()
        .astype(np.float64)
    )


def fitted(pipeline: Pipeline, booster: lgb.Booster) -> None:
    """Make `pipeline`'s model the fitted estimator of `booster`, as `LGBMRegressor.fit` leaves it."""
    model = pipeline.named_steps["model"]
    model._Booster = booster
    model._n_features = model.n_features_in_ = booster.num_feature()
    model._fitted_with_feature_names = True
    model._evals_result = {}
    model._best_iteration, model._best_score = booster.best_iteration, booster.best_score
    model.fitted_ = True


def predict(pipeline: Pipeline, trips: pd.DataFrame) -> np.ndarray:
    """Predicted minutes, never below zero."""
    return np.clip(raw_predict(pipeline, trips), 0.0, None)


def raw_predict(pipeline: Pipeline, trips: pd.DataFrame) -> np.ndarray:
    """The pipeline's predictions, its trees walked `TREE_BLOCK` at a time over all rows and summed (the same
    sums in another order: within 1e-12 minutes of one walk)."""
    features = pipeline[:-1].transform(trips)
    model = pipeline[-1]
    minutes = np.zeros(len(features))
    for first in range(0, model.booster_.current_iteration(), TREE_BLOCK):
        minutes += model.predict(features, start_iteration=first, num_iteration=TREE_BLOCK)
    return minutes
