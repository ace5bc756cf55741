"""Predict how long a New York taxi trip will take, on one machine or a Spark cluster."""

__version__ = "0.1.0"
