"""MLflow's "model from code" entry point: MLflow runs this file to build the object it loads and serves.

Logging the model this way stores no pickled Python object: loading runs this code, which needs this
package installed (as the serving image has it).
"""

from mlflow.models import set_model

from taxi_duration.model import TripDurationModel

set_model(TripDurationModel())
