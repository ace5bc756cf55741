"""Time-honest splits: train on a window of months, validate on the next month, test on the month after.

Never a random split across time: a model that will predict next month must be judged on a month it has
not seen, and the test month is touched only once, after every choice was made on the validation month.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import Month, parse_months
from taxi_duration.ingest.inputs import MONTH_SHARE, InputFile


@dataclass(frozen=True)
class TimeSplit:
    """Consecutive months: `train` (one or more), then `validate`, then `test`."""

    train: tuple[Month, ...]
    validate: Month
    test: Month

    def __post_init__(self) -> None:
        if not self.train:
            raise UsageError("a split needs at least one training month")
        if list(self.train) != sorted(set(self.train)):
            raise UsageError(f"training months must be distinct and in order: {', '.join(map(str, self.train))}")
        if not self.train[-1] < self.validate < self.test:
            raise UsageError(
                f"months must run train < validate < test, got train ..{self.train[-1]}, "
                f"validate {self.validate}, test {self.test}"
            )

    @classmethod
    def last_two_held_out(cls, months: list[Month]) -> TimeSplit:
        """Train on all months but the last two; validate on the second last; test on the last."""
        ordered = sorted(set(months))
        if len(ordered) < 3:
            raise UsageError(f"a time-honest split needs at least 3 months of data, got {len(ordered)}")
        return cls(tuple(ordered[:-2]), ordered[-2], ordered[-1])

    @classmethod
    def after(cls, train: list[Month]) -> TimeSplit:
        """Train on `train`, validate on the month after it, test on the month after that."""
        ordered = sorted(set(train))
        if not ordered:
            raise UsageError("a split needs at least one training month")
        return cls(tuple(ordered), ordered[-1].next(), ordered[-1].next().next())

    def role_of(self, source: InputFile) -> str | None:
        """The part a file belongs to, by the month in its name."""
        if source.month is None:
            raise UsageError(f"{source.path}: no month in the file name, so it cannot be placed in {self}")
        return self.role(Month.from_yyyymm(source.month))

    def role(self, month: Month) -> str | None:
        """'train', 'validate', 'test', or None for a month outside the split."""
        if month in self.train:
            return "train"
        return {self.validate: "validate", self.test: "test"}.get(month)

    def __str__(self) -> str:
        first, last = self.train[0], self.train[-1]
        window = str(first) if first == last else f"{first}..{last}"
        return f"train {window}, validate {self.validate}, test {self.test}"


@dataclass(frozen=True)
class FileSplit:
    """Parts named by file, for a data set its publisher already split (the Kaggle trips, drawn at random
    from the same months): there is no month order to honor, so the files say which part is which."""

    train: tuple[str, ...]  # file names
    validate_files: tuple[str, ...]
    test_files: tuple[str, ...]

    def __post_init__(self) -> None:
        parts = (self.train, self.validate_files, self.test_files)
        if not all(parts):
            raise UsageError("a split by file needs training, validation and test files")
        names = [n for part in parts for n in part]
        if len(set(names)) < len(names):
            raise UsageError("a file cannot be in two parts of a split")

    @property
    def validate(self) -> str:
        """The validation files, as one label."""
        return "+".join(self.validate_files)

    @property
    def test(self) -> str:
        """The test files, as one label."""
        return "+".join(self.test_files)

    def role_of(self, source: InputFile) -> str | None:
        """The part a file was named for."""
        for role, names in (("train", self.train), ("validate", self.validate_files), ("test", self.test_files)):
            if source.path.name in names:
                return role
        return None

    def __str__(self) -> str:
        return f"train {'+'.join(self.train)}, validate {self.validate}, test {self.test}"


Split = TimeSplit | FileSplit


def choose(
    files: Sequence[InputFile],
    train_months: str | None = None,
    validate_files: Sequence[InputFile] = (),
    test_files: Sequence[InputFile] = (),
) -> Split:
    """The split a training run asked for: by file when validation or test files are named (then `files`
    train), else the two months after `train_months` (2023-01 or 2023-01..2023-02), else the last two
    months of `files` held out."""
    if validate_files or test_files:
        if train_months:
            raise UsageError("--train-months splits by month; --validate-data and --test-data split by file")
        names = [tuple(f.path.name for f in part) for part in (files, validate_files, test_files)]
        return FileSplit(*names)
    if train_months:
        return TimeSplit.after(parse_months(train_months))
    months = sorted({Month.from_yyyymm(f.month) for f in files if f.month is not None})
    if len(months) < 3:
        found = ", ".join(f"{f.path.name} {Month.from_yyyymm(f.month) if f.month else '(no month)'}" for f in files)
        raise UsageError(
            f"a time-honest split needs at least 3 months of data, found {len(months)}: {found or 'no file'}. A "
            "file's month is the one in its name (green_tripdata_2023-01.parquet), else, for Parquet, the month of "
            f"{MONTH_SHARE:.0%} of its pickups; or name the months with --train-months"
        )
    return TimeSplit.last_two_held_out(months)
