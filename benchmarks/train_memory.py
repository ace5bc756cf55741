"""Benchmark embedded training's memory: the batched path against the in-memory one, on the same rows.

Run from the repository root:

    python benchmarks/train_memory.py --rows 10M --rows 50M --in-memory-up-to 10M

The input is synthetic trips over 2023-01..2023-03 (`data/bench/synthetic-<rows>-seed0`, the engine
benchmark's files, made once if missing; `--data` names another folder of three months): train on 2023-01,
validate on 2023-02, as `taxi-duration train` splits them. Each size and path runs in a fresh process
measured by `taxi_duration.ops.bench.measure` (wall time, CPU time user+sys and peak RSS of the process tree):

- `batched`: what the training job does: the parts read from DuckDB in batches, LightGBM's binned dataset
  built from a spool of encoded batches, the validation month predicted a batch at a time;
- `in-memory`: the path before it: each part collected into one pandas frame, fitted and predicted whole
  (run only up to `--in-memory-up-to`: at 50M rows it needs more memory than the machine has);
- `job`: the whole `taxi-duration train` (batched; the course baseline, the test month and the course's
  rows scored too, MLflow logging and registry) with its own MLflow store.

`batched` and `in-memory` both validate and featurize the three months (`dataset.prepare`), fit LightGBM
(the `--search`'s trees), then score the validation month. Rows/s: training rows over the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from taxi_duration.ingest.synth import parse_rows
from taxi_duration.ops.bench.engines import synthetic
from taxi_duration.ops.bench.measure import run_measured

PATHS = ("batched", "in-memory", "job")


def work(path: str, data: Path, search: str, feature_set: str, result: Path) -> None:
    """One measured run of `batched` or `in-memory` (in this process): its rows and validation RMSE to `result`."""
    import narwhals as nw

    from taxi_duration.core.config import Engine, FeatureSet, load_settings
    from taxi_duration.core.months import Month
    from taxi_duration.engines.frames import Runtime
    from taxi_duration.features.definitions import TARGET
    from taxi_duration.ingest.inputs import check_all, discover
    from taxi_duration.train import local as train_local
    from taxi_duration.train.dataset import prepare
    from taxi_duration.train.metrics import metrics
    from taxi_duration.train.splits import TimeSplit

    fs = FeatureSet(feature_set)
    trees = {"n_estimators": 100} if search == "quick" else {}
    with tempfile.TemporaryDirectory(prefix="train-memory-") as tmp:
        runtime = Runtime.open(load_settings(data_dir=Path(tmp)), Engine.DUCKDB)
        files = check_all(discover([data]))
        split = TimeSplit.last_two_held_out([Month.from_yyyymm(f.month) for f in files if f.month is not None])
        prepared = prepare(runtime, files, split, Path(tmp) / "data")
        if path == "in-memory":
            train = prepared.pandas("train")
            model = train_local.fit(train, fs, **trees)
            validate = prepared.pandas("validate")
            actual, predicted, rows = validate[TARGET].to_numpy(), train_local.predict(model, validate), len(train)
        else:
            categorical, numeric = train_local.columns(fs)
            inputs = [*categorical, *numeric, TARGET]
            categories = prepared.parts["train"].select(*categorical).unique().collect().to_pandas()
            spool = Path(tmp) / "spool"
            model = train_local.fit_batches(prepared.batches("train", inputs), categories, fs, spool, **trees)
            batches = prepared.batches("validate", inputs)
            scored = [(b[TARGET].to_numpy(), train_local.predict(model, b)) for b in batches]
            actual, predicted = (np.concatenate(part) for part in zip(*scored, strict=True))
            rows = int(prepared.parts["train"].select(nw.len()).collect().item())
        runtime.close()
    result.write_text(json.dumps({"train_rows": rows, "validate_rmse": metrics(actual, predicted)["rmse"]}))


def measure(path: str, data: Path, search: str, feature_set: str) -> dict[str, object]:
    """Run one path in a fresh process, measured."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        if path == "job":
            env = {"TAXI_DURATION_DATA_DIR": tmp, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db"}
            cmd = [
                "env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "taxi_duration", "train",
                "--engine", "duckdb", "--search", search, "--feature-set", feature_set, "--out", str(out),
                "--data", str(data),
            ]  # fmt: skip
        else:
            cmd = [
                sys.executable, __file__, "--worker", path, "--data", str(data), "--search", search,
                "--feature-set", feature_set, "--out", str(out),
            ]  # fmt: skip
        m = run_measured(cmd)
        ok = m.returncode == 0
        found = json.loads(out.read_text()) if ok else {}
    if path == "job" and ok:
        found = {
            "train_rows": found["rows"]["train"],
            "validate_rmse": found["scores"]["validate"]["model"]["overall"]["all"]["rmse"],
        }
    rows = found.get("train_rows", 0)
    return {
        "path": path,
        "train_rows": rows,
        "wall_s": round(m.wall_s, 1),
        "cpu_s": round(m.cpu_s, 1),
        "peak_rss_mib": round(m.peak_rss_bytes / 2**20),
        "rows_per_s": round(rows / m.wall_s) if ok else None,
        "validate_rmse": found.get("validate_rmse"),
        "ok": ok,
        "error": None if ok else m.stderr_tail[-800:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", action="append", default=None, help="synthetic trips (repeatable); default 10M")
    parser.add_argument("--data", type=Path, help="a folder of three months instead of synthetic trips")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"which of {', '.join(PATHS)} to run")
    parser.add_argument("--in-memory-up-to", default="10M", help="largest size for the in-memory path")
    parser.add_argument("--search", default="quick", choices=["quick", "full"])
    parser.add_argument("--feature-set", default="with_distance")
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_memory.json"))
    parser.add_argument("--worker", choices=PATHS[:2], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work(args.worker, args.data, args.search, args.feature_set, args.out)
        return

    inputs = (
        [(args.data.name, args.data)]
        if args.data
        else [(r, synthetic(parse_rows(r), args.data_dir)) for r in args.rows or ["10M"]]
    )
    results = []
    for label, data in inputs:
        for path in args.paths.split(","):
            if path == "in-memory" and not args.data and parse_rows(label) > parse_rows(args.in_memory_up_to):
                continue
            row = {"data": label, "search": args.search, **measure(path, data, args.search, args.feature_set)}
            print(json.dumps(row), flush=True)
            results.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n| data | path | train rows | wall | CPU | peak RSS | train rows/s | val RMSE | vs in-memory |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        same = next((o for o in results if o["data"] == r["data"] and o["path"] == "in-memory" and o["ok"]), None)
        rmse = r["validate_rmse"]
        ratio = f"{rmse / same['validate_rmse']:.4f}" if same and rmse else "-"
        print(
            f"| {r['data']} | {r['path']} | {r['train_rows']:,} | {r['wall_s']} s | {r['cpu_s']} s | "
            f"{r['peak_rss_mib']:,} MiB | {r['rows_per_s'] or '-':,} | {f'{rmse:.4f}' if rmse else '-'} | {ratio} |"
        )


if __name__ == "__main__":
    main()
