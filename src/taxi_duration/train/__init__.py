"""The training job (`job`): splits, model-ready parts, the traditional (`local`) and big-data (`spark`)
trainers, the search, baselines, metrics, plots, and the bundle and native exports it writes.
"""
