"""MLflow's "model from code" entry point: MLflow runs this file to build the object it loads and serves.

Logging the model this way stores no pickled Python object: loading runs this code, which needs this
package installed (as the serving image has it). Its `predict` takes the scorer's road like every caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from taxi_duration.bundle import Bundle
from taxi_duration.errors import UsageError
from taxi_duration.geo import PACKAGED_SHAPES, load_index
from taxi_duration.scorer import Scorer


class TripDurationModel(PythonModel):
    """The MLflow face of a bundle: `predict(trips) -> minutes`."""

    def load_context(self, context: Any) -> None:
        """Open the bundle MLflow unpacked."""
        bundle = Bundle.open(Path(context.artifacts["bundle"]))
        self.scorer = Scorer(bundle, version=bundle.meta.name, uri=str(bundle.path), zones=load_index(PACKAGED_SHAPES))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        """Predicted minutes, one per trip; a trip the scorer refuses fails the call, naming why."""
        predictions = self.scorer.score(model_input)
        assert predictions is not None
        refused = [(i, r) for i, r in enumerate(predictions.reasons) if r is not None]
        if refused:
            shown = "; ".join(f"row {i}: {r}" for i, r in refused[:5])
            raise UsageError(f"{len(refused):,} of {len(model_input):,} trips cannot be predicted ({shown})")
        return predictions.minutes


set_model(TripDurationModel())
