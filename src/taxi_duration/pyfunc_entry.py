"""MLflow's "model from code" entry point: MLflow runs this file to build the object it loads and serves.

Logging the model this way stores no pickled Python object: loading runs this code, which needs this
package installed (as the serving image has it). MLflow stores a copy of this file with every model, so
what it imports must stay importable from where it is: models logged before the scorer import
`taxi_duration.model.TripDurationModel`, which is kept for them.
"""

from mlflow.models import set_model

from taxi_duration.scorer import TripDurationModel

set_model(TripDurationModel())
