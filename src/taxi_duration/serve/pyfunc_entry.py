"""MLflow's "model from code" entry point: MLflow runs this file to build the object it loads and serves.

Logging the model this way stores no pickled Python object: loading runs this code, which needs this
package installed (as the serving image has it). MLflow stores a copy of this file with every model, so
what it imports must stay importable by that name: older copies import `taxi_duration.scorer` or
`taxi_duration.model`, which the package keeps as aliases (`taxi_duration.LOGGED_MODEL_IMPORTS`).
"""

from mlflow.models import set_model

from taxi_duration.serve.scorer import TripDurationModel

set_model(TripDurationModel())
