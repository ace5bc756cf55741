"""The training job (`job`, its trainers' `adapters`, its MLflow `runlog` and data `lineage`): splits, model-ready
parts, the traditional (`local`, `tune`) and big-data (`spark`, `spark_search`, `spark_ensemble`) trainers,
baselines, metrics, plots, and the bundle and native exports it writes.
"""
