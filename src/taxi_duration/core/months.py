"""Calendar months as the TLC names them (`2023-01`), and ranges of them (`2021-01..2021-03`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from taxi_duration.core.errors import UsageError

_MONTH = re.compile(r"(\d{4})-(\d{2})")


@dataclass(frozen=True, order=True)
class Month:
    """One calendar month."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12:
            raise UsageError(f"not a month: {self.year}-{self.month:02d}")

    def __str__(self) -> str:
        return f"{self.year}-{self.month:02d}"

    @property
    def yyyymm(self) -> int:
        """The month as the integer YYYYMM, the form stored in `source_month`."""
        return self.year * 100 + self.month

    def next(self) -> Month:
        """The month after this one."""
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    @classmethod
    def from_yyyymm(cls, value: int) -> Month:
        """The month of an integer YYYYMM (the form of `source_month`)."""
        return cls(value // 100, value % 100)

    @classmethod
    def parse(cls, text: str) -> Month:
        """Parse `YYYY-MM`."""
        m = _MONTH.fullmatch(text.strip())
        if not m:
            raise UsageError(f"not a month: {text!r} (expected YYYY-MM, e.g. 2023-01)")
        return cls(int(m[1]), int(m[2]))


def parse_months(spec: str) -> list[Month]:
    """Parse `2021-01..2021-03`, `2021-01,2021-05` or a single `2021-01` into an ordered list of months."""
    months: list[Month] = []
    for part in spec.split(","):
        first, sep, last = part.partition("..")
        start = Month.parse(first)
        end = Month.parse(last) if sep else start
        if end < start:
            raise UsageError(f"month range runs backwards: {part!r}")
        m = start
        while m <= end:
            months.append(m)
            m = m.next()
    return sorted(set(months))


def month_in_name(name: str) -> Month | None:
    """The month a TLC-style file name claims (`green_tripdata_2023-01.parquet` -> 2023-01), if any."""
    found = _MONTH.findall(name)
    if not found:
        return None
    year, month = found[-1]
    return Month(int(year), int(month)) if 1 <= int(month) <= 12 else None
