"""Predict how long a New York taxi trip will take, on one machine or a Spark cluster."""

import os

__version__ = "0.1.0"

# OpenMP threads (LightGBM's) that finish their share spin until the others do. On a busy machine the thread
# they wait for is often descheduled, so the spinning burns the CPU it needs: training the main job's model
# took 142 s of CPU instead of 13 s at nice 19 beside a benchmark, for the same model. Waiting threads sleep
# instead; a user's own setting wins. OpenMP reads it once, when LightGBM loads: hence here, before any import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# MLflow draws a download bar on stderr once tqdm is installed (Optuna brings it): errors must stay one line.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
