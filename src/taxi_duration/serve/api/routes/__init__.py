"""The API's routes, one module per kind of call: predictions, operations (probes, the model, metrics,
reloads) and the docs page."""
