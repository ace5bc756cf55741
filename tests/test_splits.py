"""Time-honest splits refuse anything but train < validate < test."""

from __future__ import annotations

import pytest

from taxi_duration.errors import UsageError
from taxi_duration.months import Month, parse_months
from taxi_duration.splits import TimeSplit


def test_last_two_months_are_held_out() -> None:
    split = TimeSplit.last_two_held_out(parse_months("2022-11..2023-03"))
    assert split.train == (Month(2022, 11), Month(2022, 12), Month(2023, 1))
    assert (split.validate, split.test) == (Month(2023, 2), Month(2023, 3))
    assert str(split) == "train 2022-11..2023-01, validate 2023-02, test 2023-03"
    assert [split.role(m) for m in parse_months("2022-10..2023-04")] == [
        None,
        "train",
        "train",
        "train",
        "validate",
        "test",
        None,
    ]


@pytest.mark.parametrize(
    ("train", "validate", "test"),
    [
        ("2023-02", "2023-02", "2023-03"),  # validation inside training
        ("2023-01", "2023-03", "2023-02"),  # test before validation
        ("2023-02,2023-01", "2023-03", "2023-04"),  # training months out of order
    ],
)
def test_splits_that_look_ahead_are_refused(train: str, validate: str, test: str) -> None:
    months = tuple(Month.parse(m) for m in train.split(","))
    with pytest.raises(UsageError, match="months must"):
        TimeSplit(months, Month.parse(validate), Month.parse(test))


def test_too_few_months() -> None:
    with pytest.raises(UsageError, match="at least 3 months"):
        TimeSplit.last_two_held_out(parse_months("2023-01..2023-02"))
