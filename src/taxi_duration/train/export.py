"""The exporters, run by training while its trainer is loaded: a fitted model -> a `NativeModel`.

- LightGBM (the traditional pipeline): the booster as is, behind the same ordinal encoding scikit-learn
  did (`from_sklearn`).
- MLlib `LinearRegression` behind `StringIndexer` + `OneHotEncoder`, MLlib `GBTRegressor` and XGBoost's
  Spark estimator, read while Spark is up (`from_mllib`), and the weighted average of two of these, as
  the Spark search builds it (`mix_statement` writes it, `from_mllib` reads it back).

Predictions equal the trainer's own within 1e-6 minutes; `tests/test_native.py` checks each kind
against Spark's `transform` and scikit-learn's `predict` on the same rows.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from taxi_duration.serve.native import NODE_ARRAYS, Booster, Encoding, Linear, NativeModel, Part, Trees, category_key


def from_sklearn(pipeline: Any) -> NativeModel:
    """Export the traditional pipeline (`ColumnTransformer` of `OrdinalEncoder` + passthrough -> LightGBM)."""
    from sklearn.preprocessing import OrdinalEncoder

    prepare, model = pipeline.named_steps["prepare"], pipeline.named_steps["model"]
    inputs: list[Encoding] = []
    for _, transformer, names in prepare.transformers_:
        if isinstance(transformer, OrdinalEncoder):
            # Unknown and missing categories were both encoded as -1.
            for name, values in zip(names, transformer.categories_, strict=True):
                inputs.append(Encoding(name, {category_key(v): i for i, v in enumerate(values)}, -1.0))
        elif transformer != "drop":  # passthrough, fitted as an identity FunctionTransformer
            inputs += [Encoding(n) for n in names]
    return NativeModel([(1.0, Booster(inputs, model.booster_))], "lightgbm", [e.column for e in inputs])


# --- MLlib, read while Spark is up --------------------------------------------------------------------------

PREDICTION = "prediction"  # the output column of every Spark model `train_spark` builds
# The Spark search averages two family models with a SQLTransformer. Its statement is written here, beside
# the pattern that reads the weights back when the average is exported.
_MIX = re.compile(rf"SELECT \*, ([0-9.eE+-]+) \* (\w+) \+ ([0-9.eE+-]+) \* (\w+) AS {PREDICTION} FROM __THIS__")


def mix_statement(weight_a: float, column_a: str, weight_b: float, column_b: str) -> str:
    """The SQL that averages two prediction columns into `prediction`."""
    return f"SELECT *, {weight_a} * {column_a} + {weight_b} * {column_b} AS {PREDICTION} FROM __THIS__"


def from_mllib(model: Any) -> NativeModel:
    """Export a fitted Spark `PipelineModel` of the shapes `train_spark` builds (a family pipeline, possibly
    followed by a renaming `SQLTransformer`, or two of them averaged by one)."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import SQLTransformer

    stages = list(model.stages)
    families = [st for st in stages if isinstance(st, PipelineModel)]
    mix = next((st for st in stages if isinstance(st, SQLTransformer)), None)
    exported = {_prediction_col(f): _family(f) for f in families}
    if len(families) == 1:
        source, part = next(iter(exported.values()))
        return NativeModel([(1.0, part)], source, [e.column for e in part.inputs])
    match = _MIX.fullmatch(mix.getStatement().strip()) if mix is not None else None
    if match is None:
        raise ValueError(f"cannot export this PipelineModel: {[type(st).__name__ for st in stages]}")
    wa, ca, wb, cb = match.groups()
    parts = [(float(wa), exported[ca][1]), (float(wb), exported[cb][1])]
    return NativeModel(parts, "ensemble", sorted({e.column for _, p in parts for e in p.inputs}))


def _prediction_col(family: Any) -> str:
    return str(family.stages[-1].getPredictionCol())


def _family(family: Any) -> tuple[str, Part]:
    """One fitted family pipeline (indexers, encoders, an assembler, a regressor) as a part."""
    from pyspark.ml.feature import OneHotEncoderModel, StringIndexerModel, VectorAssembler
    from pyspark.ml.regression import GBTRegressionModel, LinearRegressionModel

    columns: dict[str, Encoding] = {}  # output column -> how a raw feature becomes it
    sizes: dict[str, int] = {}  # one-hot output column -> its vector size
    assembled: list[tuple[str, Encoding]] = []
    regressor = family.stages[-1]
    for stage in family.stages[:-1]:
        if isinstance(stage, StringIndexerModel):
            for source, out, labels in zip(stage.getInputCols(), stage.getOutputCols(), stage.labelsArray, strict=True):
                # handleInvalid="keep": an unseen category takes the index past the last label.
                columns[out] = Encoding(source, {label: i for i, label in enumerate(labels)}, float(len(labels)))
        elif isinstance(stage, OneHotEncoderModel):
            if not (stage.getDropLast() and stage.getHandleInvalid() == "keep"):
                raise ValueError("only OneHotEncoder(dropLast=True, handleInvalid='keep') is exported")
            for source, out, size in zip(stage.getInputCols(), stage.getOutputCols(), stage.categorySizes, strict=True):
                # StringIndexer's extra "__unknown" label is counted in `size`; OneHotEncoder's own extra
                # "invalid" slot is the one dropLast removes, so every category, unknown included, has a slot.
                columns[out] = columns[source]
                sizes[out] = int(size)
        elif isinstance(stage, VectorAssembler):
            assembled = [(c, columns.get(c, Encoding(c))) for c in stage.getInputCols()]
        else:
            raise ValueError(f"cannot export pipeline stage {type(stage).__name__}")
    if isinstance(regressor, LinearRegressionModel):
        return "linear", _linear(regressor, assembled, sizes)
    inputs = [encoding for _, encoding in assembled]
    if isinstance(regressor, GBTRegressionModel):
        return "gbt", _gbt(regressor, inputs)
    if type(regressor).__name__ == "SparkXGBRegressorModel":
        return "xgboost", _xgboost(regressor.get_booster(), inputs)
    raise ValueError(f"cannot export regressor {type(regressor).__name__}")


def _linear(regressor: Any, assembled: list[tuple[str, Encoding]], sizes: dict[str, int]) -> Linear:
    coefs = regressor.coefficients.toArray()
    numbers: list[Encoding] = []
    categories: list[Encoding] = []
    number_coefs: list[float] = []
    category_coefs: list[np.ndarray] = []
    offset = 0  # position in the assembled vector
    for name, encoding in assembled:
        if name not in sizes:
            numbers.append(encoding)
            number_coefs.append(coefs[offset])
            offset += 1
            continue
        start, size = sum(c.size for c in category_coefs), sizes[name]
        assert encoding.categories is not None
        table = {label: start + index for label, index in encoding.categories.items()}
        # An index past the vector is the all-zero vector: the zero `Linear` pads its table with.
        unknown = start + encoding.unknown if encoding.unknown < size else -1.0
        categories.append(Encoding(encoding.column, table, unknown))
        category_coefs.append(coefs[offset : offset + size])
        offset += size
    flat = np.concatenate(category_coefs) if category_coefs else np.empty(0)
    for encoding in categories:
        if encoding.unknown < 0:
            encoding.unknown = float(flat.size)
    return Linear(float(regressor.intercept), numbers, np.asarray(number_coefs, dtype=np.float64), categories, flat)


def _gbt(regressor: Any, inputs: list[Encoding]) -> Trees:
    nodes: dict[str, list[Any]] = {a: [] for a in NODE_ARRAYS}
    cat_sets: list[list[float]] = []
    roots = []

    def add(node: Any) -> int:
        index = len(nodes["feature"])
        for name in NODE_ARRAYS:
            nodes[name].append(0)
        nodes["value"][index] = node.prediction()
        nodes["cat_slot"][index] = -1
        if node.getClass().getSimpleName() == "LeafNode":
            nodes["left"][index] = nodes["right"][index] = index
            return index
        split = node.split()
        nodes["feature"][index] = split.featureIndex()
        if split.getClass().getSimpleName() == "CategoricalSplit":
            nodes["cat_slot"][index] = len(cat_sets)
            cat_sets.append(list(split.leftCategories()))
        else:
            nodes["threshold"][index] = split.threshold()
        nodes["left"][index] = add(node.leftChild())
        nodes["right"][index] = add(node.rightChild())
        return index

    for tree in regressor.trees:
        roots.append(add(tree._java_obj.rootNode()))
    width = int(max((max(c) for c in cat_sets if c), default=0)) + 1
    cat_left = np.zeros((len(cat_sets), width if cat_sets else 0), dtype=bool)
    for i, categories in enumerate(cat_sets):
        cat_left[i, [int(c) for c in categories]] = True
    return Trees(
        inputs=inputs,
        feature=np.asarray(nodes["feature"], dtype=np.int32),
        threshold=np.asarray(nodes["threshold"], dtype=np.float64),
        left=np.asarray(nodes["left"], dtype=np.int32),
        right=np.asarray(nodes["right"], dtype=np.int32),
        value=np.asarray(nodes["value"], dtype=np.float64),
        default_left=np.zeros(len(nodes["feature"]), dtype=bool),
        cat_slot=np.asarray(nodes["cat_slot"], dtype=np.int32),
        cat_left=cat_left,
        roots=np.asarray(roots, dtype=np.int32),
        weights=np.asarray(regressor.treeWeights, dtype=np.float64),
        depth=max(t.depth for t in regressor.trees),
    )


def _xgboost(booster: Any, inputs: list[Encoding]) -> Trees:
    """An XGBoost booster's trees (numeric splits, one output) from its JSON model."""
    learner = json.loads(booster.save_raw("json"))["learner"]
    trees = learner["gradient_booster"]["model"]["trees"]
    base = float(learner["learner_model_param"]["base_score"].strip("[]"))  # "[2.0E1]" since XGBoost 3
    feature, threshold, left, right, value, default_left, roots = [], [], [], [], [], [], []
    depth, offset = 0, 0
    for tree in trees:
        roots.append(offset)
        lc, rc = np.asarray(tree["left_children"]), np.asarray(tree["right_children"])
        leaf = lc == -1
        n = lc.size
        own = np.arange(n) + offset
        feature.append(np.where(leaf, 0, tree["split_indices"]))
        threshold.append(np.where(leaf, 0.0, tree["split_conditions"]))
        value.append(np.where(leaf, tree["split_conditions"], 0.0))
        left.append(np.where(leaf, own, lc + offset))
        right.append(np.where(leaf, own, rc + offset))
        default_left.append(np.asarray(tree["default_left"], dtype=bool))
        depth = max(depth, _depth(lc, rc))
        offset += n
    return Trees(
        inputs=inputs,
        feature=np.concatenate(feature).astype(np.int32),
        threshold=np.concatenate(threshold).astype(np.float32),
        left=np.concatenate(left).astype(np.int32),
        right=np.concatenate(right).astype(np.int32),
        value=np.concatenate(value).astype(np.float32),
        default_left=np.concatenate(default_left),
        cat_slot=np.full(sum(len(f) for f in feature), -1, dtype=np.int32),
        cat_left=np.zeros((0, 0), dtype=bool),
        roots=np.asarray(roots, dtype=np.int32),
        weights=np.ones(len(trees)),
        depth=depth,
        base=base,
        strict=True,
        float32=True,
    )


def _depth(left: np.ndarray, right: np.ndarray) -> int:
    level, frontier = 0, [0]
    while True:
        frontier = [c for n in frontier for c in (left[n], right[n]) if c != -1]
        if not frontier:
            return level
        level += 1
