"""The training figures: drawn without pyplot, so importing training leaves a notebook's backend alone."""

from __future__ import annotations

import subprocess
import sys

# A fresh interpreter with a backend of its own choosing (as a notebook's inline one), then training
# imported and every figure drawn and written as PNG.
SCRIPT = """
import io, sys
import matplotlib
matplotlib.use("svg")
import numpy as np
import taxi_duration.train.job
from taxi_duration.train import plots

rng = np.random.default_rng(0)
actual = rng.uniform(1, 60, 500)
predicted = actual + rng.normal(0, 3, 500)
scores = {"model": {"by_borough": {"Queens": {"rows": 3, "rmse": 4.0}}}}
figures = [
    plots.predicted_vs_actual(actual, predicted, "a"),
    plots.residuals_by_hour(actual, predicted, rng.integers(0, 24, 500), "b"),
    plots.feature_importance({"trip_distance": 3.0, "hour": 1.0}, "c"),
    plots.rmse_by_borough(scores, "d"),
]
for fig in figures:
    out = io.BytesIO()
    fig.savefig(out, format="png")
    assert out.getvalue().startswith(b"\\x89PNG"), "not a PNG"
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
"""


def test_importing_training_keeps_the_backend_and_figures_still_render() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    backend, pyplot_imported = done.stdout.split()
    assert backend == "svg"  # plots.py switched every importer to Agg
    assert pyplot_imported == "False"  # no figure is held in pyplot's global registry
