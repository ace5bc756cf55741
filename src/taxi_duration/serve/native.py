"""Models without their trainers: predictions from numpy (and LightGBM's own booster), no JVM, no pandas.

This is the runtime serving loads: the API, `mlflow models serve` and any other process predict with
numpy alone, and nothing here imports scikit-learn, Spark, XGBoost or a trainer (`export.py` writes these
models while the trainer is up). The parts a model is made of:

- `Booster`: a LightGBM booster as is, behind the same ordinal encoding scikit-learn did, one row
  through LightGBM's C single-row fast path (tens of microseconds).
- `Linear`: an intercept, one coefficient per number, one coefficient table per category column (a
  one-hot dot product is a lookup).
- `Trees`: every tree flattened into node arrays and walked level by level for all trees at once, with
  MLlib's or XGBoost's split tests; XGBoost's float32 arithmetic (its split tests and its tree-by-tree
  sum) is reproduced. Written here because XGBoost's own one-row predict costs about a millisecond on
  this machine, and nothing reads MLlib trees outside the JVM.
- `NativeModel`: the weighted sum of parts (one part for a single model, two for the Spark search's
  average), saved to and loaded from a folder.
"""

from __future__ import annotations

import ctypes
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

SPEC = "native.json"
Rows = Mapping[str, Any]  # column name -> a 1-d array (or list) of values, one per row


def category_key(value: Any) -> str:
    """A category value as Spark's `StringIndexer` sees it: integers cast to text, strings as they are."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Encoding:
    """How one input column becomes one number: as it is, or through a category -> index table."""

    column: str
    categories: dict[str, int] | None = None
    unknown: float = float("nan")  # the index of a category the table does not hold

    def encode(self, values: Any) -> np.ndarray:
        """A float64 column for `values`."""
        if self.categories is None:
            try:
                return np.asarray(values, dtype=np.float64)
            except TypeError:  # a list holding None
                return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        table, unknown = self.categories, self.unknown
        return np.array([table.get(category_key(v), unknown) for v in values], dtype=np.float64)

    def encode_one(self, value: Any) -> float:
        """The number for one value."""
        if self.categories is None:
            return float("nan") if value is None else float(value)
        return float(self.categories.get(category_key(value), self.unknown))

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "categories": self.categories, "unknown": self.unknown}


def _matrix(encodings: Sequence[Encoding], rows: Rows) -> np.ndarray:
    return np.column_stack([e.encode(rows[e.column]) for e in encodings]) if encodings else np.empty((0, 0))


def _row(encodings: Sequence[Encoding], row: Mapping[str, Any]) -> np.ndarray:
    return np.array([[e.encode_one(row[e.column]) for e in encodings]], dtype=np.float64)


class Part(Protocol):
    """One exported model: numbers in, minutes out."""

    @property
    def inputs(self) -> list[Encoding]:
        """The feature columns it reads, each with its encoding."""
        ...

    def predict(self, rows: Rows) -> np.ndarray:
        """Minutes for every row of `rows` (columns as arrays)."""
        ...

    def predict_one(self, row: Mapping[str, Any]) -> float:
        """Minutes for one row (a dict of scalars): the serving path."""
        ...

    def save(self, path: Path, name: str) -> dict[str, Any]:
        """Write any arrays beside the spec under `name`; return the part's JSON spec."""
        ...


@dataclass
class Linear:
    """`intercept + sum(coef * number) + sum(coef[category])`: a linear model over numbers and one-hot columns."""

    intercept: float
    numbers: list[Encoding]
    number_coefs: np.ndarray
    categories: list[Encoding]  # each maps a category to its slot in `category_coefs`, or `unknown` for none
    category_coefs: np.ndarray  # one coefficient per one-hot slot; the slot past the end is the all-zero vector

    def predict(self, rows: Rows) -> np.ndarray:
        """Minutes for every row."""
        out = np.full(len(rows[self.inputs[0].column]), self.intercept, dtype=np.float64)
        if self.numbers:
            out += _matrix(self.numbers, rows) @ self.number_coefs
        for encoding in self.categories:
            out += self._padded[encoding.encode(rows[encoding.column]).astype(np.int64)]
        return out

    def predict_one(self, row: Mapping[str, Any]) -> float:
        """Minutes for one row."""
        total = self.intercept
        if self.numbers:
            total += float(_row(self.numbers, row)[0] @ self.number_coefs)
        for encoding in self.categories:
            total += self._padded[int(encoding.encode_one(row[encoding.column]))]
        return float(total)

    def __post_init__(self) -> None:
        self._padded = np.append(self.category_coefs, 0.0)

    @property
    def inputs(self) -> list[Encoding]:
        """The numbers, then the category columns."""
        return [*self.numbers, *self.categories]

    def save(self, path: Path, name: str) -> dict[str, Any]:
        np.save(path / f"{name}.npy", self.category_coefs)
        return {
            "type": "linear",
            "intercept": self.intercept,
            "numbers": [e.to_json() for e in self.numbers],
            "number_coefs": self.number_coefs.tolist(),
            "categories": [e.to_json() for e in self.categories],
        }

    @classmethod
    def load(cls, spec: dict[str, Any], path: Path, name: str) -> Linear:
        return cls(
            spec["intercept"],
            [Encoding(**e) for e in spec["numbers"]],
            np.asarray(spec["number_coefs"], dtype=np.float64),
            [Encoding(**e) for e in spec["categories"]],
            np.load(path / f"{name}.npy"),
        )


# Node arrays of a flattened tree ensemble, in the order they are saved.
NODE_ARRAYS = ("feature", "threshold", "left", "right", "value", "default_left", "cat_slot")


@dataclass
class Trees:
    """A tree ensemble as node arrays: `left`/`right` are global node ids, leaves point at themselves.

    A row goes left at a node when its value is below the threshold (`strict`, XGBoost) or at most the
    threshold (MLlib), or, for a categorical split, when its category is in the node's left set. A missing
    value goes where `default_left` says (MLlib: always right, as NaN fails every comparison).
    """

    inputs: list[Encoding]
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    default_left: np.ndarray
    cat_slot: np.ndarray  # -1 for a numeric split, else a row of `cat_left`
    cat_left: np.ndarray  # (categorical splits, categories) -> goes left
    roots: np.ndarray
    weights: np.ndarray  # per tree
    depth: int
    base: float = 0.0
    strict: bool = False
    float32: bool = False  # XGBoost: float32 inputs, thresholds and sums, trees added one by one

    def predict(self, rows: Rows) -> np.ndarray:
        """Minutes for every row."""
        return self._walk(_matrix(self.inputs, rows))

    def predict_one(self, row: Mapping[str, Any]) -> float:
        """Minutes for one row."""
        return float(self._walk(_row(self.inputs, row))[0])

    def _walk(self, x: np.ndarray) -> np.ndarray:
        if self.float32:
            x = x.astype(np.float32)
        nodes = np.broadcast_to(self.roots, (x.shape[0], self.roots.size))
        rows = np.arange(x.shape[0])[:, None]
        for _ in range(self.depth):
            values = x[rows, self.feature[nodes]]
            below = values < self.threshold[nodes] if self.strict else values <= self.threshold[nodes]
            slot = self.cat_slot[nodes]
            if self.cat_left.size:
                categorical = slot >= 0
                inside = (values >= 0) & (values < self.cat_left.shape[1])
                index = np.where(categorical & inside, values, 0).astype(np.int64)
                in_left = self.cat_left[np.maximum(slot, 0), index] & inside
                below = np.where(categorical, in_left, below)
            go_left = np.where(np.isnan(values), self.default_left[nodes], below)
            nodes = np.where(go_left, self.left[nodes], self.right[nodes])
        leaves = self.value[nodes]
        if self.float32:
            # XGBoost's predictor starts from the base score and adds each tree's leaf in float32, in order.
            start = np.full((x.shape[0], 1), self.base, dtype=np.float32)
            return np.cumsum(np.hstack([start, leaves]), axis=1, dtype=np.float32)[:, -1].astype(np.float64)
        return self.base + leaves @ self.weights

    def save(self, path: Path, name: str) -> dict[str, Any]:
        arrays = {a: getattr(self, a) for a in (*NODE_ARRAYS, "cat_left", "roots", "weights")}
        np.savez(path / f"{name}.npz", **arrays)
        return {
            "type": "trees",
            "inputs": [e.to_json() for e in self.inputs],
            "depth": self.depth,
            "base": self.base,
            "strict": self.strict,
            "float32": self.float32,
        }

    @classmethod
    def load(cls, spec: dict[str, Any], path: Path, name: str) -> Trees:
        with np.load(path / f"{name}.npz") as arrays:
            loaded = {k: arrays[k] for k in arrays.files}
        inputs = [Encoding(**e) for e in spec["inputs"]]
        flags = {k: spec[k] for k in ("depth", "base", "strict", "float32")}
        return cls(inputs=inputs, **flags, **loaded)


@dataclass
class Booster:
    """A LightGBM booster as is, behind the ordinal encoding the scikit-learn pipeline applied."""

    inputs: list[Encoding]
    booster: Any  # lightgbm.Booster

    def predict(self, rows: Rows) -> np.ndarray:
        """Minutes for every row."""
        return np.asarray(self.booster.predict(_matrix(self.inputs, rows)), dtype=np.float64)

    def predict_one(self, row: Mapping[str, Any]) -> float:
        """Minutes for one row."""
        return self._single.predict([e.encode_one(row[e.column]) for e in self.inputs])

    @cached_property
    def _single(self) -> _SingleRow:
        return _SingleRow(self.booster)

    def save(self, path: Path, name: str) -> dict[str, Any]:
        self.booster.save_model(str(path / f"{name}.txt"))
        return {"type": "lightgbm", "inputs": [e.to_json() for e in self.inputs]}

    @classmethod
    def load(cls, spec: dict[str, Any], path: Path, name: str) -> Booster:
        import lightgbm

        return cls([Encoding(**e) for e in spec["inputs"]], lightgbm.Booster(model_file=str(path / f"{name}.txt")))


class _SingleRow:
    """LightGBM's one-row fast path from its C API, which the Python package does not wrap: `Booster.predict`
    re-parses its parameters and re-wraps the data on every call, twice the cost of the trees themselves."""

    _NORMAL, _FLOAT64, _ROW_MAJOR = 0, 1, 1  # C_API_PREDICT_NORMAL, C_API_DTYPE_FLOAT64, row-major

    def __init__(self, booster: Any) -> None:
        from lightgbm.basic import _LIB, _c_str, _safe_call

        self._lib, self._safe_call = _LIB, _safe_call
        self._handle = ctypes.c_void_p()
        # One input row and one output value, allocated once: their addresses are passed on every call.
        self._row = np.zeros(booster.num_feature(), dtype=np.float64)
        self._row_ptr = self._row.ctypes.data_as(ctypes.c_void_p)
        self._out = np.zeros(1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._length = ctypes.c_int64()
        self._lock = threading.Lock()  # the buffers and the fast config serve one call at a time
        features = ctypes.c_int32(booster.num_feature())
        kinds = (ctypes.c_int(self._NORMAL), ctypes.c_int(0), ctypes.c_int(-1), ctypes.c_int(self._FLOAT64))
        params = _c_str("num_threads=1")
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle, *kinds, features, params, ctypes.byref(self._handle)
            )
        )
        self._booster = booster  # the fast config points into it

    def predict(self, row: Sequence[float]) -> float:
        with self._lock:
            self._row[:] = row
            self._safe_call(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    self._handle, self._row_ptr, ctypes.byref(self._length), self._out_ptr
                )
            )
            return float(self._out[0])

    def __del__(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.LGBM_FastConfigFree(self._handle)


PART_TYPES: dict[str, Any] = {"linear": Linear, "trees": Trees, "lightgbm": Booster}


@dataclass
class NativeModel:
    """A weighted sum of exported parts (one part with weight 1 for a single model), never below zero."""

    parts: list[tuple[float, Part]]
    source: str  # what was exported: "lightgbm", "linear", "gbt", "xgboost" or "ensemble"
    inputs: list[str] = field(default_factory=list)

    def predict(self, rows: Rows) -> np.ndarray:
        """Minutes for every row of `rows` (a pandas frame or a dict of columns)."""
        total = sum(w * p.predict(rows) for w, p in self.parts)
        return np.clip(np.asarray(total, dtype=np.float64), 0.0, None)

    def predict_one(self, row: Mapping[str, Any]) -> float:
        """Minutes for one row of features (a dict): the serving path."""
        return max(0.0, sum(w * p.predict_one(row) for w, p in self.parts))

    def save(self, path: Path) -> Path:
        """Write the model into a new folder."""
        path.mkdir(parents=True)
        parts = [{"weight": w, **p.save(path, f"part{i}")} for i, (w, p) in enumerate(self.parts)]
        spec = {"source": self.source, "inputs": self.inputs, "parts": parts}
        (path / SPEC).write_text(json.dumps(spec, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> NativeModel:
        """Read a folder written by `save`."""
        spec = json.loads((path / SPEC).read_text())
        parts = [(p["weight"], PART_TYPES[p["type"]].load(p, path, f"part{i}")) for i, p in enumerate(spec["parts"])]
        return cls(parts, spec["source"], spec["inputs"])
