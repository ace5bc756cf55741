"""Time-honest splits refuse anything but train < validate < test; a run gets the split it asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import Month, parse_months
from taxi_duration.ingest.inputs import InputFile
from taxi_duration.train.splits import FileSplit, TimeSplit, choose


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


def _file(name: str, month: int | None) -> InputFile:
    return InputFile(Path("data") / name, "parquet", 10, ("PULocationID",), "green", month)


MONTHLY = [_file(f"green_tripdata_2023-0{m}.parquet", 202300 + m) for m in (1, 2, 3, 4)]
KAGGLE = [_file(n, None) for n in ("train.csv", "validate.csv", "test.csv")]


def test_choose_holds_out_the_last_two_months_of_the_files_by_default() -> None:
    undated = _file("extra.parquet", None)  # a file without a month in its name does not move the split
    assert choose([*MONTHLY, undated]) == TimeSplit.last_two_held_out(parse_months("2023-01..2023-04"))
    assert str(choose(MONTHLY)) == "train 2023-01..2023-02, validate 2023-03, test 2023-04"


def test_choose_validates_and_tests_on_the_two_months_after_the_training_months() -> None:
    split = choose(MONTHLY, "2023-01")
    assert split == TimeSplit((Month(2023, 1),), Month(2023, 2), Month(2023, 3))


def test_choose_splits_by_file_when_validation_and_test_files_are_named() -> None:
    train, validate, test = KAGGLE
    split = choose([train], None, [validate], [test])
    assert split == FileSplit(("train.csv",), ("validate.csv",), ("test.csv",))


def test_choose_refuses_a_split_by_month_and_by_file_at_once() -> None:
    train, validate, test = KAGGLE
    with pytest.raises(UsageError, match="--train-months splits by month; --validate-data and --test-data"):
        choose([train], "2023-01", [validate], [test])


def test_choose_refuses_validation_files_without_test_files() -> None:
    train, validate, _ = KAGGLE
    with pytest.raises(UsageError, match="needs training, validation and test files"):
        choose([train], None, [validate])
