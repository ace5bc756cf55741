"""`python -m taxi_duration.ops.bench.reference {duckdb-sql|pyspark|polars} OUT FILE...`: run one reference on
the files, write its output under OUT and print its counts by status as JSON (what `bench engines` runs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from taxi_duration.ops.bench.reference.on_duckdb import duckdb_sql
from taxi_duration.ops.bench.reference.on_polars import polars
from taxi_duration.ops.bench.reference.on_spark import pyspark

JOBS = {"duckdb-sql": duckdb_sql, "pyspark": pyspark, "polars": polars}


def main() -> None:
    """Entry point: `python -m taxi_duration.ops.bench.reference {duckdb-sql|pyspark|polars} OUT FILE...`."""
    which, out, *files = sys.argv[1:]
    print(json.dumps(JOBS[which](Path(out), files)))


if __name__ == "__main__":
    main()
