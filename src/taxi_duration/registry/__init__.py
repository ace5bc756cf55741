"""The MLflow store and registry: runs, tags, crash recovery and the champion aliases (`tracking`)."""
