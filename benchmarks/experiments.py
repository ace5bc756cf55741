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
- `pair_miles` (`pretrip`): the zone pair's median metered miles (out of fold; the straight-line miles below
  `MIN_TRIPS`): what the trip will likely be metered, known before it starts.
- `either_way` (`pretrip`): the pair's median minutes over both directions (A to B with B to A), so a rare
  pair borrows its reverse's trips.
- `pair_miles_min` (`pretrip`): `pair_miles`, and those miles at the pair's median speed by hour band.
- `ratecode` (`pretrip`): the TLC rate code (standard, JFK, Newark, negotiated, ...) as a number.
- `minute_of_day`: the pickup's minute of the day, finer than the hour.
- `recent_slowness`: how slow the city is right now, as a live system would know it from the trips that have
  just ended: the median of log(minutes / the pair's median minutes) over the trips that ended in the hour
  before this trip's pickup (of either part: each trip is seen when it ends), and how many there were.
  `recent_slowness_hour` measures each ended trip against its pair-by-hour median instead; `_20`, `_180`,
  `_360` look back 20 minutes, 3 or 6 hours; `recent_borough` and `recent_zone` count only the ended trips
  that began in the trip's pickup borough (1 hour) or zone (2 hours). `recent_all`: all of them together.
- `combined`, `combined_pretrip`: the added inputs that each gained a little, together;
  `combined_pretrip_2` the same after `minute_of_day` and `pair_miles` were tried.
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

from taxi_duration.core import schema as s
from taxi_duration.core.config import FeatureSet, Settings
from taxi_duration.core.months import parse_months
from taxi_duration.engines.frames import Runtime
from taxi_duration.features import store as fs
from taxi_duration.features.definitions import PU_BOROUGH, STRAIGHT_MILES, TARGET
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.train import dataset
from taxi_duration.train import local as train_local
from taxi_duration.train.metrics import hour_band, metrics
from taxi_duration.train.splits import TimeSplit

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
EITHER_WAY = ["_zone_a", "_zone_b"]  # the pair with its zones sorted: A to B and B to A share one key


def _out_of_fold(
    train: pd.DataFrame, validate: pd.DataFrame, key: list[str], stats: dict[str, tuple[str, str]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both parts with `stats` (name -> (column, aggregation)) of the training rows sharing the trip's `key`,
    out of fold for training rows (the store's folds), as the store computes its levels; NaN where fewer than
    `fs.MIN_TRIPS` trips share it."""
    folds = nw.from_native(train, eager_only=True).select(fs.fold_expr()).to_native().iloc[:, 0].to_numpy()

    def joined(frame: pd.DataFrame, of: pd.DataFrame) -> pd.DataFrame:
        table = of.groupby(key, observed=True).agg(n=(TARGET, "size"), **stats)
        out = frame.join(table, on=key)
        out.loc[out["n"].fillna(0) < fs.MIN_TRIPS, list(stats)] = np.nan
        return out.drop(columns=["n"])

    parts = [joined(train[folds == k], train[folds != k]) for k in range(fs.FOLDS)]
    return pd.concat(parts).loc[train.index], joined(validate, train)


def with_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the helper keys the experiments group by: the hour band, the miles the trip's speed is
    measured over, and the zone pair either way."""
    zones = np.sort(frame[[s.PU_ZONE, s.DO_ZONE]].to_numpy(), axis=1)
    return frame.assign(
        _band=hour_band(frame["pickup_hour"]),
        _mph=frame[s.DISTANCE].fillna(frame[STRAIGHT_MILES]) / (frame[TARGET] / 60.0),
        _zone_a=zones[:, 0],
        _zone_b=zones[:, 1],
    )


def with_group_stats(train: pd.DataFrame, validate: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both parts with the experiments' extra statistics, each out of fold (`_out_of_fold`), falling back to
    the store's pair statistic (or the straight-line miles) where too few trips share the key:
    `pair_hour_min`, `pair_hour_mph` (the pair by hour band and weekend), `pair_miles` (the pair's median
    metered miles), `either_way_min` (the median minutes of the pair in both directions)."""
    train, validate = with_keys(train), with_keys(validate)
    stats = [
        (PAIR_HOUR, {"pair_hour_min": (TARGET, "median"), "pair_hour_mph": ("_mph", "median")}),
        ([s.PU_ZONE, s.DO_ZONE], {"pair_miles": (s.DISTANCE, "median")}),
        (EITHER_WAY, {"either_way_min": (TARGET, "median")}),
    ]
    for key, named in stats:
        train, validate = _out_of_fold(train, validate, key, named)
    fallback = {
        "pair_hour_min": "fs_pair_median_min",
        "pair_hour_mph": "fs_pair_median_mph",
        "either_way_min": "fs_pair_median_min",
        "pair_miles": STRAIGHT_MILES,
    }

    def filled(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**{c: frame[c].fillna(frame[b]) for c, b in fallback.items()}).drop(
            columns=["_band", "_mph", *EITHER_WAY]
        )

    return filled(train), filled(validate)


def _recent(
    train: pd.DataFrame, validate: pd.DataFrame, expected: str, window: str = "60min", by: str | None = None
) -> tuple[pd.Series, pd.Series]:
    """For every trip of both parts: the median log(minutes / `expected`) of the trips that ended in the
    `window` before its pickup (with the same `by`, if given), and their count (NaN and 0 when none did)."""
    both = pd.concat([train, validate], keys=["train", "validate"])
    both[s.PICKUP] = both[s.PICKUP].astype("datetime64[ns]")
    both["_key"] = both[by].astype(str) if by else ""
    both["_ended"] = both[s.PICKUP] + pd.to_timedelta(both[TARGET], unit="min")
    both["_ratio"] = np.log(both[TARGET] / both[expected].clip(lower=1.0))
    lives = []
    for key, group in both.dropna(subset=["_ratio"]).groupby("_key", observed=True):
        done = group.set_index("_ended")["_ratio"].sort_index().rolling(window)
        live = pd.DataFrame({"median": done.median(), "count": done.count()}).groupby(level=0).last()
        lives.append(live.rename_axis("_ended").reset_index().assign(_key=key))
    live = pd.concat(lives).sort_values("_ended")
    picked = both[[s.PICKUP, "_key"]].reset_index(names=["_part", "_row"]).sort_values(s.PICKUP)
    joined = pd.merge_asof(picked, live, left_on=s.PICKUP, right_on="_ended", by="_key", allow_exact_matches=False)
    stale = (joined[s.PICKUP] - joined["_ended"]) > pd.Timedelta(window)
    joined.loc[stale | joined["_ended"].isna(), ["median", "count"]] = [np.nan, 0.0]
    joined = joined.set_index(["_part", "_row"])
    return joined["median"], joined["count"]


# name -> (the expected minutes each ended trip is measured against, window, the key trips must share)
RECENT = {
    "recent_slowness": ("fs_pair_median_min", "60min", None),
    "recent_slowness_hour": ("pair_hour_min", "60min", None),
    "recent_slowness_20": ("fs_pair_median_min", "20min", None),
    "recent_slowness_180": ("fs_pair_median_min", "180min", None),
    "recent_slowness_360": ("fs_pair_median_min", "360min", None),
    "recent_borough": ("fs_pair_median_min", "60min", PU_BOROUGH),
    "recent_zone": ("fs_pair_median_min", "120min", s.PU_ZONE),
}


def with_recent_traffic(train: pd.DataFrame, validate: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both parts with each of `RECENT` (`_recent`) and its count as `<name>_trips`."""
    for name, (expected, window, by) in RECENT.items():
        median, count = _recent(train, validate, expected, window, by)
        train, validate = (
            frame.assign(
                **{name: median.loc[part].reindex(frame.index).to_numpy()},
                **{f"{name}_trips": count.loc[part].reindex(frame.index).to_numpy()},
            )
            for frame, part in ((train, "train"), (validate, "validate"))
        )
    return train, validate


def prior(frame: pd.DataFrame, feature_set: FeatureSet, by_hour: bool = False) -> np.ndarray:
    """The store's estimate of each trip's minutes, within the modeled 1-60 minute window: the pair's median
    (`pretrip`) or the trip's miles at its median speed, by hour band with `by_hour` (`with_group_stats`)."""
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
    "pair_miles": lambda f: f["pair_miles"],
    "either_way_min": lambda f: f["either_way_min"],
    "pair_miles_min": lambda f: 60.0 * f["pair_miles"] / f["pair_hour_mph"].clip(lower=1.0),
    "ratecode": lambda f: f[s.RATECODE].fillna(-1).astype(float),
    "minute_of_day": lambda f: (f[s.PICKUP].dt.hour * 60 + f[s.PICKUP].dt.minute).astype(float),
    **{c: (lambda f, c=c: f[c]) for name in RECENT for c in (name, f"{name}_trips")},
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
    "pair_miles": ("minutes", ("pair_miles",), {}, (FeatureSet.PRETRIP,)),
    "either_way": ("minutes", ("either_way_min",), {}, (FeatureSet.PRETRIP,)),
    "pair_miles_min": ("minutes", ("pair_miles", "pair_miles_min"), {}, (FeatureSet.PRETRIP,)),
    "ratecode": ("minutes", ("ratecode",), {}, (FeatureSet.PRETRIP,)),
    "minute_of_day": ("minutes", ("minute_of_day",), {}, tuple(FeatureSet)),
    **{name: ("minutes", (name, f"{name}_trips"), {}, tuple(FeatureSet)) for name in RECENT},
    "recent_all": ("minutes", tuple(c for n in RECENT for c in (n, f"{n}_trips")), {}, tuple(FeatureSet)),
    "combined_pretrip_2": (
        "minutes",
        ("minute_of_day", "pair_miles", "school_holiday", "pair_hour_min", "pair_hour_mph"),
        {},
        (FeatureSet.PRETRIP,),
    ),
    # The inputs that each gained a little, together.
    "combined": ("minutes", ("directness", "school_holiday", "pair_hour_min", "pair_hour_mph"), {}, WD),
    "combined_pretrip": ("minutes", ("school_holiday", "pair_hour_min", "pair_hour_mph"), {}, (FeatureSet.PRETRIP,)),
}


def table(results: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: each variant's validation RMSE and its change against the latest `plain` before it with
    the same seeds (a run fits `plain` first, so a variant is compared with the code it ran on)."""
    plain: dict[tuple[str, str, str], float] = {}
    lines = ["| window | feature set | variant | seeds | val RMSE | vs plain |", "|---|---|---|---|---:|---:|"]
    for r in results:
        key = (r["window"], r["feature_set"], r["seeds"])
        if r["variant"] == "plain":
            plain[key] = r["val_rmse"]
        base = plain.get(key)
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
    dataset.KEPT = (*dataset.KEPT, s.RATECODE)  # for the `ratecode` variant: the product's parts drop it
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime.open(Settings(data_dir=Path(tmp)))
        prepared = dataset.prepare(runtime, files, split, Path(tmp) / "data")
        train, validate = with_group_stats(prepared.pandas("train"), prepared.pandas("validate"))
        train, validate = with_recent_traffic(train, validate)
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
