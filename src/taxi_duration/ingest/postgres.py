"""PostgreSQL: trips read from a table, predictions written back.

Rows travel through ADBC's native PostgreSQL driver (they arrive as Arrow, by the COPY protocol).
Predictions are upserted on their key, so writing the same batch twice leaves one row per trip. A
connection URL's password is never printed: messages show `redacted(url)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from taxi_duration.core.config import Settings
from taxi_duration.core.errors import UsageError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def redacted(url: str) -> str:
    """The URL with its password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def configured_url(settings: Settings) -> str:
    """The database of `predict` and `stream --to`: `postgres_url`, refused in one line when it is not set."""
    if settings.postgres_url is None:
        raise UsageError("no database: set TAXI_DURATION_POSTGRES_URL=postgresql://user:password@host:port/db")
    return settings.postgres_url.get_secret_value()


def _identifier(name: str) -> str:
    # Table and column names go into SQL text; only plain (optionally schema-qualified) names are allowed.
    if not _IDENTIFIER.fullmatch(name):
        raise UsageError(f"{name!r} is not a plain table or column name")
    return name


@contextmanager
def connect(url: str) -> Iterator[Any]:
    """An ADBC connection; a failure names the server without its password."""
    import adbc_driver_postgresql.dbapi as pg

    try:
        connection = pg.connect(url)
    except Exception as exc:  # the driver raises its own error types, whose text may include the URL
        message = str(exc).replace(url, redacted(url)).splitlines()[0]
        raise UsageError(f"cannot connect to {redacted(url)}: {message}") from None
    try:
        yield connection
    finally:
        connection.close()


def write_table(url: str, table: str, rows: pa.Table, replace: bool = False) -> None:
    """Create `table` from Arrow rows (or replace it), in one transaction."""
    with connect(url) as connection, connection.cursor() as cursor:
        cursor.adbc_ingest(_identifier(table), rows, mode="replace" if replace else "create")
        connection.commit()


@contextmanager
def _reading(table: str) -> Iterator[None]:
    """A query the user's names can make fail (no such table or column, no permission): one clear line."""
    import adbc_driver_manager

    try:
        yield
    except adbc_driver_manager.ProgrammingError as exc:
        # The driver's text is several lines around the server's own one ("ERROR:  relation ... does not exist").
        lines = str(exc).splitlines()
        reason = next((line.split("ERROR:", 1)[1].strip() for line in lines if "ERROR:" in line), lines[0])
        raise UsageError(f"cannot read table {table}: {reason}") from None


def read_table(url: str, table: str, columns: list[str] | None = None) -> pa.Table:
    """Every row of `table` as Arrow, through the native driver."""
    names = ", ".join(_identifier(c) for c in columns) if columns else "*"
    with connect(url) as connection, connection.cursor() as cursor, _reading(table):
        cursor.execute(f"SELECT {names} FROM {_identifier(table)}")
        return cursor.fetch_arrow_table()


def repeated_keys(url: str, table: str, key: str) -> set[Any]:
    """The values of `key` found on more than one row of `table` (counted by the server; usually none)."""
    column = _identifier(key)
    with connect(url) as connection, connection.cursor() as cursor, _reading(table):
        cursor.execute(
            f"SELECT {column} FROM {_identifier(table)} WHERE {column} IS NOT NULL "
            f"GROUP BY {column} HAVING count(*) > 1"
        )
        return set(cursor.fetch_arrow_table().column(0).to_pylist())


def batches(url: str, table: str, rows: int) -> Iterator[pa.Table]:
    """`table` in chunks of `rows` rows (the last one smaller), streamed from the server (memory stays flat).

    The driver's batches are sized in bytes (megabytes: a small table arrives in one), so they are cut.
    """
    with connect(url) as connection, connection.cursor() as cursor, _reading(table):
        cursor.execute(f"SELECT * FROM {_identifier(table)}")
        reader = cursor.fetch_record_batch()
        pending = reader.schema.empty_table()
        for batch in reader:
            pending = pa.concat_tables([pending, pa.Table.from_batches([batch])])
            while pending.num_rows >= rows:
                yield pending.slice(0, rows)
                pending = pending.slice(rows)
        if pending.num_rows:
            yield pending


def upsert(url: str, table: str, rows: pa.Table, key: list[str]) -> int:
    """Insert `rows` into `table` (created on first use), replacing rows with the same `key`; returns the
    table's row count after. Running the same batch twice leaves the table as one run left it."""
    target, keys = _identifier(table), [_identifier(k) for k in key]
    staging = f"_staging_{target.replace('.', '_')}"
    columns = ", ".join(_identifier(c) for c in rows.column_names)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in rows.column_names if c not in keys)
    with connect(url) as connection, connection.cursor() as cursor:
        cursor.adbc_ingest(staging, rows, mode="replace", temporary=True)
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM {staging} WITH NO DATA")
        cursor.execute(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = '{staging}_key') "
            f"THEN CREATE UNIQUE INDEX {staging}_key ON {target} ({', '.join(keys)}); END IF; END $$"
        )
        cursor.execute(
            f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staging} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )
        cursor.execute(f"SELECT count(*) FROM {target}")
        (count,) = cursor.fetchone()
        connection.commit()
    return int(count)
