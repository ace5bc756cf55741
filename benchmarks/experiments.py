"""Target and feature experiments for the embedded LightGBM, judged on the validation month only (issue 15,
item 3). Not a test, not a product path: each variant is fitted with the product's own data preparation
(`dataset.prepare`), pipeline (`train_local.build`, the fixed `LGBM_PARAMS` of `--search full`) and metrics
(`evaluate.metrics`), and scored on the validation month. The test month is never read here.

    python benchmarks/experiments.py --data ../shared/data --window 2023-01
    python benchmarks/experiments.py --data ../shared/data --window 2021-01..2023-01
    python benchmarks/experiments.py --table   # the markdown table of every result so far

Each variant's validation RMSE is compared with `plain` fitted with the same seeds on the same window.

Variants (each against `plain`, the product's model today):
- `prior_residual`: LightGBM starts from the store's estimate of the trip (its `init_score`) and learns the
  residual; the prediction adds the estimate back. The estimate: the zone pair's median minutes (`pretrip`),
  or the trip's miles at the zone pair's median speed (`with_distance`).
- `prior_ratio`: the model learns the ratio to the same estimate, weighted by its square (so that the loss is
  the squared error in minutes); the prediction multiplies it back.
- `log_smear`: learns log minutes; the prediction is exp(raw) x the smearing factor (Duan's: the mean of
  exp(residual) over the training rows).
- `log_prior_smear`: the same, starting from log of the store's estimate.
- `gamma`: LightGBM's gamma objective (log link): the mean, not the median, of a skewed target, directly.
- `directness` (`with_distance`): metered miles / straight-line miles as one more input.
- `school_holiday`: 1 on NYC public-school closing days that are not federal holidays (`SCHOOL_CLOSED`).
- `dst_week`: 1 in the seven days after a daylight-saving change (no such day in 2023-01 or 2023-02).
- `pair_hour`: the zone pair's median minutes and median speed by hour band and weekend (`PAIR_HOUR`), as the
  store computes its levels (out of fold on training rows, `MIN_TRIPS` else the pair's), as two more inputs;
  `pair_hour_prior_residual` starts from the estimate they give instead of the pair's.
- `prior_feature`: the store's estimate of the trip's minutes (`prior`) as one more input.
- `combined`, `combined_pretrip`: the added inputs that each gained a little, together.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from taxi_duration import feature_store as fs
from taxi_duration import schema as s
from taxi_duration import train_local
from taxi_duration.config import FeatureSet, Settings
from taxi_duration.dataset import prepare
from taxi_duration.engines import Runtime
from taxi_duration.evaluate import hour_band, metrics
from taxi_duration.features import STRAIGHT_MILES, TARGET
from taxi_duration.inputs import check_all, discover
from taxi_duration.months import parse_months
from taxi_duration.splits import TimeSplit

# NYC DOE closing days of the shared months that are not US federal holidays (the DOE's published calendars
# 2020-21, 2021-22, 2022-23): Lunar New Year and the midwinter recess.
SCHOOL_CLOSED = (
    [date(2021, 2, 12)]
    + [date(2021, 2, 15) + timedelta(d) for d in range(1, 5)]
    + [date(2022, 2, 1)]
    + [date(2022, 2, 21) + timedelta(d) for d in range(1, 5)]
    + [date(2023, 1, 23)]
    + [date(2023, 2, 20) + timedelta(d) for d in range(1, 5)]
)
# US daylight-saving starts and ends in the shared years.
DST_CHANGES = [date(2021, 3, 14), date(2021, 11, 7), date(2022, 3, 13), date(2022, 11, 6), date(2023, 3, 12)]
DST_WEEKS = {c + timedelta(d) for c in DST_CHANGES for d in range(7)}


PAIR_HOUR = [s.PU_ZONE, s.DO_ZONE, "_band", "is_weekend"]


def with_pair_hour(train: pd.DataFrame, validate: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both parts with `pair_hour_min` and `pair_hour_mph`: the medians of the training rows sharing the trip's
    `PAIR_HOUR` key, out of fold for training rows (the store's folds), the pair's store statistic where fewer
    than `fs.MIN_TRIPS` trips share it."""
    speed = train[s.DISTANCE].fillna(train[STRAIGHT_MILES]) / (train[TARGET] / 60.0)
    rows = train.assign(_band=hour_band(train["pickup_hour"]), _mph=speed)
    rows["_fold"] = nw.from_native(rows, eager_only=True).select(fs.fold_expr()).to_native().iloc[:, 0].to_numpy()

    def stats(of: pd.DataFrame) -> pd.DataFrame:
        grouped = of.groupby(PAIR_HOUR, observed=True)
        return grouped.agg(n=(TARGET, "size"), pair_hour_min=(TARGET, "median"), pair_hour_mph=("_mph", "median"))

    def joined(frame: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
        out = frame.join(table, on=PAIR_HOUR)
        enough = out["n"].fillna(0) >= fs.MIN_TRIPS
        out["pair_hour_min"] = out["pair_hour_min"].where(enough, out["fs_pair_median_min"])
        out["pair_hour_mph"] = out["pair_hour_mph"].where(enough, out["fs_pair_median_mph"])
        return out.drop(columns=["n"])

    folds = [joined(rows[rows["_fold"] == k], stats(rows[rows["_fold"] != k])) for k in range(fs.FOLDS)]
    out_train = pd.concat(folds).loc[train.index].drop(columns=["_band", "_mph", "_fold"])
    out_validate = joined(validate.assign(_band=hour_band(validate["pickup_hour"])), stats(rows)).drop(columns="_band")
    return out_train, out_validate


def prior(frame: pd.DataFrame, feature_set: FeatureSet, by_hour: bool = False) -> np.ndarray:
    """The store's estimate of each trip's minutes, within the modeled 1-60 minute window: the pair's median
    (`pretrip`) or the trip's miles at its median speed, by hour band with `by_hour` (`with_pair_hour`)."""
    if feature_set is FeatureSet.PRETRIP:
        minutes = frame["pair_hour_min" if by_hour else "fs_pair_median_min"].to_numpy(float)
    else:
        miles = frame[s.DISTANCE].fillna(frame[STRAIGHT_MILES]).to_numpy(float)
        mph = frame["pair_hour_mph" if by_hour else "fs_pair_median_mph"].to_numpy(float)
        minutes = 60.0 * miles / np.clip(mph, 1.0, None)
    return np.clip(minutes, 1.0, 60.0)


def _days(frame: pd.DataFrame) -> pd.Series:
    return frame[s.PICKUP].dt.date


EXTRA_COLUMNS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "directness": lambda f: f[s.DISTANCE] / f[STRAIGHT_MILES].where(f[STRAIGHT_MILES] > 0),
    "school_holiday": lambda f: _days(f).isin(SCHOOL_CLOSED).astype(float),
    "dst_week": lambda f: _days(f).isin(DST_WEEKS).astype(float),
    "pair_hour_min": lambda f: f["pair_hour_min"],
    "pair_hour_mph": lambda f: f["pair_hour_mph"],
}


def fit_predict(
    train: pd.DataFrame,
    validate: pd.DataFrame,
    feature_set: FeatureSet,
    target: str = "minutes",
    extra: tuple[str, ...] = (),
    **params: Any,
) -> np.ndarray:
    """Fit the product's pipeline (plus `extra` inputs) on one target transform; validation minutes."""
    pipeline = train_local.build(feature_set, **params)
    categorical, numeric = train_local.columns(feature_set)
    if extra:
        train = train.assign(**{e: EXTRA_COLUMNS[e](train) for e in extra if e != "prior_min"})
        validate = validate.assign(**{e: EXTRA_COLUMNS[e](validate) for e in extra if e != "prior_min"})
        if "prior_min" in extra:
            train, validate = (f.assign(prior_min=prior(f, feature_set)) for f in (train, validate))
        prep = pipeline.named_steps["prepare"]
        prep.transformers = [prep.transformers[0], ("numeric", "passthrough", [*numeric, *extra])]
    y = train[TARGET].to_numpy(float)
    by_hour = target.startswith("pair_hour_")
    base_t, base_v = prior(train, feature_set, by_hour), prior(validate, feature_set, by_hour)
    target = target.removeprefix("pair_hour_")
    fit: dict[str, Any] = {"model__categorical_feature": categorical}
    if target == "prior_residual":
        fit["model__init_score"] = base_t
    elif target == "prior_ratio":
        y, fit["model__sample_weight"] = y / base_t, base_t**2
    elif target in ("log_smear", "log_prior_smear"):
        y = np.log(y)
        if target == "log_prior_smear":
            fit["model__init_score"] = np.log(base_t)
    pipeline.fit(train, y, **fit)
    raw = train_local.raw_predict(pipeline, validate)
    if target == "prior_residual":
        return raw + base_v
    if target == "prior_ratio":
        return raw * base_v
    if target in ("log_smear", "log_prior_smear"):
        offset_t = np.log(base_t) if target == "log_prior_smear" else 0.0
        offset_v = np.log(base_v) if target == "log_prior_smear" else 0.0
        fitted = train_local.raw_predict(pipeline, train) + offset_t
        smear = np.mean(np.exp(np.log(train[TARGET].to_numpy(float)) - fitted))
        return np.exp(raw + offset_v) * smear
    if target == "gamma":  # its blocks' outputs are exp(partial sums), which do not add up: one walk
        return np.asarray(pipeline.predict(validate), float)
    return raw


WD = (FeatureSet.WITH_DISTANCE,)
# name -> (target, extra inputs, LightGBM parameters beyond LGBM_PARAMS, feature sets it applies to)
VARIANTS: dict[str, tuple[str, tuple[str, ...], dict[str, Any], tuple[FeatureSet, ...]]] = {
    "plain": ("minutes", (), {}, tuple(FeatureSet)),
    "prior_residual": ("prior_residual", (), {}, tuple(FeatureSet)),
    "prior_ratio": ("prior_ratio", (), {}, tuple(FeatureSet)),
    "log_smear": ("log_smear", (), {}, tuple(FeatureSet)),
    "log_prior_smear": ("log_prior_smear", (), {}, tuple(FeatureSet)),
    "gamma": ("gamma", (), {"objective": "gamma"}, tuple(FeatureSet)),
    "directness": ("minutes", ("directness",), {}, WD),
    "school_holiday": ("minutes", ("school_holiday",), {}, tuple(FeatureSet)),
    "dst_week": ("minutes", ("dst_week",), {}, tuple(FeatureSet)),
    "pair_hour": ("minutes", ("pair_hour_min", "pair_hour_mph"), {}, tuple(FeatureSet)),
    "pair_hour_prior_residual": ("pair_hour_prior_residual", (), {}, tuple(FeatureSet)),
    "prior_feature": ("minutes", ("prior_min",), {}, tuple(FeatureSet)),
    # The inputs that each gained a little, together.
    "combined": ("minutes", ("directness", "school_holiday", "pair_hour_min", "pair_hour_mph"), {}, WD),
    "combined_pretrip": ("minutes", ("school_holiday", "pair_hour_min", "pair_hour_mph"), {}, (FeatureSet.PRETRIP,)),
}


def table(results: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: each variant's validation RMSE and its change against `plain` with the same seeds."""
    plain = {(r["window"], r["feature_set"], r["seeds"]): r["val_rmse"] for r in results if r["variant"] == "plain"}
    lines = ["| window | feature set | variant | seeds | val RMSE | vs plain |", "|---|---|---|---|---:|---:|"]
    for r in results:
        base = plain.get((r["window"], r["feature_set"], r["seeds"]))
        delta = "" if base is None or r["variant"] == "plain" else f"{r['val_rmse'] / base - 1:+.2%}"
        lines.append(
            f"| {r['window']} | {r['feature_set']} | {r['variant']} | {r['seeds']} | {r['val_rmse']:.4f} | {delta} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--window", default="2023-01", help="training months; the next month validates")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--feature-sets", default=",".join(FeatureSet))
    parser.add_argument("--seeds", default="0", help="comma-separated LightGBM seeds; RMSEs are averaged")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/experiments.json"), help="results, appended")
    parser.add_argument("--table", action="store_true", help="print the table of `--out` and stop")
    args = parser.parse_args()
    if args.table:
        print("\n".join(table(json.loads(args.out.read_text()))))
        return
    split = TimeSplit.after(parse_months(args.window))
    files = check_all(discover([args.data / "green_tripdata_*.parquet"]))
    results = json.loads(args.out.read_text()) if args.out.exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime.open(Settings(data_dir=Path(tmp)))
        prepared = prepare(runtime, files, split, Path(tmp) / "data")
        train, validate = with_pair_hour(prepared.pandas("train"), prepared.pandas("validate"))
        actual = validate[TARGET].to_numpy(float)
        for name in args.variants.split(","):
            target, extra, params, sets = VARIANTS[name]
            for feature_set in (FeatureSet(f) for f in args.feature_sets.split(",")):
                if feature_set not in sets:
                    continue
                started, rmses = time.perf_counter(), []
                for seed in (int(x) for x in args.seeds.split(",")):
                    predicted = fit_predict(train, validate, feature_set, target, extra, seed=seed, **params)
                    rmses.append(metrics(actual, np.clip(predicted, 0.0, None))["rmse"])
                row = {
                    "window": args.window,
                    "validate": str(split.validate),
                    "feature_set": str(feature_set),
                    "variant": name,
                    "seeds": args.seeds,
                    "val_rmse": float(np.mean(rmses)),
                    "val_rmse_by_seed": rmses,
                    "rows": {"train": len(train), "validate": len(validate)},
                    "seconds": round(time.perf_counter() - started, 1),
                }
                print(json.dumps(row), file=sys.stderr, flush=True)
                results.append(row)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
