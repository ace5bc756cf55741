"""Time-honest splits: train on a window of months, validate on the next month, test on the month after.

Never a random split across time: a model that will predict next month must be judged on a month it has
not seen, and the test month is touched only once, after every choice was made on the validation month.
"""

from __future__ import annotations

from dataclasses import dataclass

from taxi_duration.errors import UsageError
from taxi_duration.months import Month


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

    def role(self, month: Month) -> str | None:
        """'train', 'validate', 'test', or None for a month outside the split."""
        if month in self.train:
            return "train"
        return {self.validate: "validate", self.test: "test"}.get(month)

    def __str__(self) -> str:
        first, last = self.train[0], self.train[-1]
        window = str(first) if first == last else f"{first}..{last}"
        return f"train {window}, validate {self.validate}, test {self.test}"
