"""Exported models predict what their trainers predict: Spark's `transform` and scikit-learn's `predict`,
on the same rows (unseen categories included), within 1e-6 minutes, with no JVM needed to load them."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from taxi_duration.core.config import Engine, Search, load_settings
from taxi_duration.core.months import parse_months
from taxi_duration.engines.frames import Runtime
from taxi_duration.features.definitions import TARGET
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.ingest.synth import generate
from taxi_duration.serve import native as native_module
from taxi_duration.serve.native import NativeModel
from taxi_duration.train import local as train_local
from taxi_duration.train.dataset import ROLES, prepare
from taxi_duration.train.export import from_mllib, from_sklearn
from tests.conftest import SPLIT

TOLERANCE = 1e-6


def _unseen(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with categories no model saw: a zone pair, a borough string, a vendor."""
    odd = frame.head(20).copy()
    odd["zone_pair"] = "999-999"
    odd["pu_borough"] = "Atlantis"
    odd["borough_pair"] = "Atlantis-Atlantis"
    odd["vendor_id"] = 77
    return odd


def _roundtrip(model: NativeModel, tmp_path: Path) -> NativeModel:
    return NativeModel.load(model.save(tmp_path / "native"))


@pytest.mark.spark
def test_every_spark_family_and_their_average_match_spark_transform(
    prepared_spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taxi_duration.train import spark as train_spark
    from taxi_duration.train import spark_ensemble

    train = prepared_spark.parts["train"].to_native()
    validate = prepared_spark.parts["validate"].to_native()
    quick = train_spark.GRIDS[Search.QUICK]
    monkeypatch.setitem(train_spark.GRIDS, Search.QUICK, {**quick, "gbt": {"maxIter": [5], "maxDepth": [3]}})
    result = train_spark.fit(train, validate, "with_distance", parallelism=2, search=Search.QUICK)
    families = {c.name: c.model for c in result.candidates if c.name != "ensemble"}
    assert {"linear", "gbt", "xgboost"} <= set(families)
    models = {name: spark_ensemble.renamed(m) for name, m in families.items()}
    models["ensemble"] = spark_ensemble.averaged(families["linear"], families["xgboost"], 0.75)
    rows = validate.toPandas()
    rows = pd.concat([rows, _unseen(rows)], ignore_index=True)
    frame = prepared_spark.parts["validate"].to_native().sparkSession.createDataFrame(rows)
    for name, fitted in models.items():
        spark_minutes = train_spark.MllibPredictor(fitted).transform(frame).select("prediction").toPandas()
        native = _roundtrip(from_mllib(fitted), tmp_path / name)
        ours = native.predict(rows)
        np.testing.assert_allclose(ours, spark_minutes["prediction"].to_numpy(), rtol=0, atol=TOLERANCE, err_msg=name)
        one = [native.predict_one(r) for r in rows.head(50).to_dict("records")]
        np.testing.assert_allclose(one, ours[:50], rtol=0, atol=1e-9, err_msg=name)
        assert native.source == name
    served = _predict_in_a_fresh_process(tmp_path / "ensemble" / "native", rows, tmp_path)
    np.testing.assert_allclose(served, ours, rtol=0, atol=1e-12)


NO_JVM = """
import sys
import pandas as pd
import numpy as np
from taxi_duration.serve.native import NativeModel
rows = pd.read_parquet(sys.argv[2])
np.save(sys.argv[3], NativeModel.load(__import__("pathlib").Path(sys.argv[1])).predict(rows))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "py4j"))
assert not loaded, loaded
"""


def _predict_in_a_fresh_process(model: Path, rows: pd.DataFrame, work: Path) -> np.ndarray:
    """Load an exported Spark model where Spark was never imported: no JVM, no pyspark, same numbers."""
    rows.to_parquet(work / "rows.parquet")
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", "SPARK_HOME")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if "java" not in p.lower())
    result = subprocess.run(
        [sys.executable, "-c", NO_JVM, str(model), str(work / "rows.parquet"), str(work / "out.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return np.load(work / "out.npy")


# What the serving runtime must never pull in: Spark, the trainers, the evaluator, the exporters.
TRAINING_ONLY = (
    "pyspark",
    "sklearn",
    "xgboost",
    "taxi_duration.train.export",
    "taxi_duration.train.metrics",
    "taxi_duration.train.model",
    "taxi_duration.engines.spark",
)


@pytest.mark.parametrize("module", ["serve.native", "serve.scorer", "serve.holder", "serve.api", "serve.pyfunc_entry"])
def test_the_serving_side_imports_no_trainer_evaluator_or_spark(module: str) -> None:
    """The serving side alone in a fresh process (on this process's path): nothing only training needs comes
    with it. (MLflow itself imports pyspark when it is installed, to know its types: that is MLflow's.)"""
    code = f"import sys, taxi_duration.{module} as m; print(m.__file__); print(*sorted(sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    where, loaded = result.stdout.splitlines()
    assert Path(where).is_relative_to(Path(native_module.__file__).parent)
    ours = TRAINING_ONLY if module == "serve.native" else tuple(t for t in TRAINING_ONLY if t != "pyspark")
    pulled = [
        m
        for m in loaded.split()
        if m.startswith("taxi_duration.train.job") or any(m == t or m.startswith(f"{t}.") for t in ours)
    ]
    assert not pulled, pulled


def test_lightgbm_pipeline_matches_scikit_learn(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    generate(6_000, parse_months("2023-01..2023-03"), root, seed=6)
    runtime = Runtime.open(load_settings(), Engine.DUCKDB)
    prepared = prepare(runtime, check_all(discover([root])), SPLIT, tmp_path / "work")
    train, validate = prepared.pandas("train"), prepared.pandas("validate")
    pipeline = train_local.fit(train, "with_distance", n_estimators=50)
    rows = pd.concat([validate, _unseen(validate)], ignore_index=True)
    native = _roundtrip(from_sklearn(pipeline), tmp_path)
    expected = train_local.predict(pipeline, rows)
    np.testing.assert_allclose(native.predict(rows), expected, rtol=0, atol=TOLERANCE)
    one = [native.predict_one(r) for r in rows.tail(30).to_dict("records")]
    np.testing.assert_allclose(one, expected[-30:], rtol=0, atol=1e-9)
    assert TARGET not in native.inputs
    runtime.close()


@pytest.mark.parametrize("old", ["taxi_duration.scorer", "taxi_duration.model"])
def test_models_logged_before_the_sub_packages_find_their_pyfunc_where_they_look(old: str) -> None:
    """MLflow keeps each model's copy of `pyfunc_entry.py`; older copies import the class by the module names
    of their day. In a fresh process, as a server loading such a model starts."""
    code = (
        f"from {old} import TripDurationModel; import sys, taxi_duration.serve.scorer as today; "
        f"assert TripDurationModel is today.TripDurationModel; assert sys.modules[{old!r}] is today; print('ok')"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_names_no_logged_model_used_are_not_importable() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("taxi_duration.serving")


@pytest.mark.spark
def test_spark_reads_each_part_from_where_it_wrote_it(prepared_spark: Any) -> None:
    # Written once, each part is a scan of its own folder joined to the store's tables: not the trip files,
    # validated and featurized again.
    assert set(prepared_spark.written) == {(role, course) for role in ROLES for course in (False, True)}
    for (role, course_rows), folder in prepared_spark.written.items():
        part = (prepared_spark.course_parts if course_rows else prepared_spark.parts)[role].to_native()
        read = [Path(urlparse(uri).path) for uri in part.inputFiles()]
        assert any(path.is_relative_to(folder) for path in read), (role, course_rows)
        assert all(path.is_relative_to(folder) or path.is_relative_to(prepared_spark.store.path) for path in read)
        assert prepared_spark.rows(role, course_rows) == part.count() > 0
