"""The prediction API: FastAPI over the served model, hard to break and cheap per request.

Every input is checked before it reaches the model, and every refusal is a 4xx whose body says which field
was wrong and why. Prediction calls take an optional API key (`TAXI_DURATION_API_KEY`), admin calls a
separate one (`TAXI_DURATION_ADMIN_KEY`); without an admin key the admin calls are off.
"""

from taxi_duration.serve.api.app import create_app
from taxi_duration.serve.api.routes.docs import DOCS_ASSETS
from taxi_duration.serve.api.schemas import MAX_BATCH

__all__ = ["DOCS_ASSETS", "MAX_BATCH", "create_app"]
