"""The references our engines are measured against: the prepare job written by hand, as a user would.

`duckdb-sql` is one DuckDB SQL statement; `pyspark` is plain PySpark DataFrame code; `polars` is a Polars lazy
query from `scan_parquet` to a streaming, partitioned `sink_parquet`. Each is hand-tuned as an expert in that
engine would write it, and does the work of `taxi-duration validate --features` on TLC green Parquet files:
normalize, repair, apply every rule (the duplicate check over the 14 trip fields), compute the features and the
target, write clean and quarantined rows in one partitioned write, and count rows by file, reasons and repairs
(what the quality report is made of). Their rows and columns are the project's, geometry included: the tests
compare them. They are written without the package's transformations (only its constants, zone table,
centroids and holidays, and the one Spark session builder, so both Spark runs share their settings), with the
engines' own functions (`asin`, `atan2`), so they show what the package's abstractions cost.

TLC green files since 2014 carry zone ids and no coordinates: the coordinate columns are null, and the
geometry runs between the zones' centroids (-1 where a zone has none, 264 and 265).

One module per engine (`on_duckdb`, `on_spark`, `on_polars`), each cut into the job's steps; `spec` holds what
they share (the output's columns, the rules and the geometry in SQL, the zones). Run:
`python -m taxi_duration.ops.bench.reference {duckdb-sql|pyspark|polars} OUT FILE...` (`__main__.py`); prints
the counts as JSON.
"""
