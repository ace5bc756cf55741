"""The project's exceptions: one per kind of failure a user can act on, caught once by the CLI."""

from __future__ import annotations


class TaxiDurationError(Exception):
    """Base class: its message is printed as is, in one line, and the command exits non-zero."""

    exit_code = 1
    label = "error"  # what the one line starts with


class BadInputError(TaxiDurationError):
    """An input file cannot be read as trip data: corrupt, wrong schema, malformed lines."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class UsageError(TaxiDurationError):
    """The command line or configuration asks for something that cannot be done."""

    exit_code = 2


class MissingAliasError(UsageError):
    """A registry alias names no version: the model it stands for was never trained (or the alias was removed)."""


class EngineUnavailableError(TaxiDurationError):
    """An engine's runtime is missing (for Spark: pyspark, or Java 17/21)."""


class NetworkError(TaxiDurationError):
    """A download could not reach its server."""


class ReconciliationError(TaxiDurationError):
    """Output row counts do not add up to the input: a bug, never a data problem."""


class DriftDetectedError(TaxiDurationError):
    """A drift check crossed its threshold: not a failure but a signal, for a scheduler to retrain on."""

    exit_code = 3
    label = "drift"
