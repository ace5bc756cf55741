"""Engines: the thin layer that knows how pandas, DuckDB and Spark read, write and differ.

Transformations elsewhere are written once as narwhals expressions on a `nw.LazyFrame`; this module turns
files into such frames and frames back into files, and holds the few adapters where narwhals' backends
disagree. Nothing outside this module and `spark.py` touches an engine's native API.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import narwhals as nw
import numpy as np
import pyarrow as pa  # module level: Spark reads the Arrow UDF's type hints from this module's names
import pyarrow.parquet as pq
from narwhals.dtypes import DType

from taxi_duration.core.config import Engine, Settings
from taxi_duration.core.errors import BadInputError
from taxi_duration.core.storage import Location
from taxi_duration.geo.shapes import PACKAGED_SHAPES, ZoneIndex, fill_zones, shapes_path

PARQUET_COMPRESSION = "zstd"
# Rows DuckDB buffers per thread and partition of a partitioned write. At its default (524,288) they held 1.5
# GiB at 10M rows; at this, `validate --features` peaks at 716 MiB at 1M rows and 787 at 10M, same CPU.
DUCKDB_PARTITION_FLUSH_ROWS = 65_536
# The memory DuckDB may hold in a plan that would grow with its rows before it spills (`Runtime.spilling`):
# the duplicate check's group-by of hashes (925 MiB at 50M rows unbounded, beside 350-425 MiB of Parquet read
# buffers) and the training rows' pickup-order sort (13.6 GiB at 45M rows). At 600MB validate peaks at 610 MiB
# at 1M rows and 734 at 50M; 450MB took 1.27x the time at 10M; 512MB, the hash pass alone bounded, ran out.
DUCKDB_SPILL_MEMORY = "600MB"
STEP_PROPERTY = "taxi_duration.step"  # the Spark jobs' local property that names their step (`bench.stages`)


@dataclass
class Runtime:
    """An open engine: the DuckDB connection or Spark session that frames of this run belong to."""

    engine: Engine
    native: Any = field(default=None, repr=False)
    shapes: Path = PACKAGED_SHAPES  # the TLC zone shapes, for files with coordinates instead of zones
    # Where working copies of inputs go (a JSON-lines file without its bad lines): created on first use.
    scratch: Callable[[], Path] = field(default=lambda: Path(tempfile.gettempdir()), repr=False)
    _functions: set[str] = field(default_factory=set, repr=False)  # DuckDB functions registered here
    memory_limit: str | None = None  # DuckDB's, as the settings set it (None: DuckDB's default)

    @classmethod
    def open(cls, settings: Settings, engine: Engine | None = None) -> Runtime:
        """Start `engine` (default: the configured one) with the settings' limits."""
        engine = engine or settings.engine
        shapes = shapes_path(settings.zone_shapes)
        if engine is Engine.DUCKDB:
            import duckdb

            con = duckdb.connect()
            if settings.duckdb_memory_limit:
                con.execute(f"SET memory_limit = '{settings.duckdb_memory_limit}'")
            con.execute("SET preserve_insertion_order = false")  # lets DuckDB stream writes in parallel
            con.execute(f"SET partitioned_write_flush_threshold = {DUCKDB_PARTITION_FLUSH_ROWS}")
            # Prefetch buffers grew with the files' row groups (validate: 28 MiB at 1M rows, 273 at 50M) and
            # bought no speed on local files.
            con.execute("SET disable_parquet_prefetching = true")
            return cls(engine, con, shapes, settings.scratch_dir, memory_limit=settings.duckdb_memory_limit)
        if engine is Engine.SPARK:
            from taxi_duration.engines.spark import session_for  # here: serving computes features and never needs Spark

            return cls(engine, session_for(settings), shapes, settings.scratch_dir)
        return cls(engine, shapes=shapes, scratch=settings.scratch_dir)

    def mark_step(self, name: str) -> None:
        """Name the job step that this thread's engine work belongs to (on Spark, its jobs' `STEP_PROPERTY`)."""
        if self.engine is Engine.SPARK:
            self.native.sparkContext.setLocalProperty(STEP_PROPERTY, name)

    def close(self) -> None:
        """Release the engine (a Spark session is left running: it is shared by the whole process)."""
        if self.engine is Engine.DUCKDB and self.native is not None:
            self.native.close()

    @contextmanager
    def reading(self, what: object) -> Iterator[None]:
        """Turn an engine's failure on bad values (a timestamp that does not parse, a number that is
        text) into a `BadInputError` about `what`; the files themselves were checked before."""
        try:
            yield
        except Exception as exc:
            if not _is_engine_data_error(exc):
                raise
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInputError(what, f"{self.engine} could not read a value: {first_line}") from exc

    # Readers: every one returns a lazy frame whose columns are the file's own, unnormalized.

    def scan_parquet(self, path: Location, columns: list[str] | None = None) -> nw.LazyFrame[Any]:
        """Scan one Parquet file or a folder of Parquet part files."""
        if self.engine is Engine.DUCKDB:
            target = str(Path(str(path)) / "**" / "*.parquet") if Path(str(path)).is_dir() else str(path)
            rel = self.native.read_parquet(target)
            return _select(nw.from_native(rel), columns)
        if self.engine is Engine.SPARK:
            return _select(nw.from_native(self.native.read.parquet(str(path))), columns)
        import pandas as pd

        return nw.from_native(pd.read_parquet(str(path), columns=columns, dtype_backend="pyarrow")).lazy()

    def scan_csv(self, path: Location, columns: list[str]) -> nw.LazyFrame[Any]:
        """Scan a CSV file with a header (`columns`), every column as text with empty fields null."""
        if self.engine is Engine.DUCKDB:
            rel = self.native.read_csv(str(path), header=True, all_varchar=True)
            return nw.from_native(rel)
        if self.engine is Engine.SPARK:
            return nw.from_native(self.native.read.options(header=True, mode="FAILFAST").csv(str(path)))
        import pandas as pd
        import pyarrow as pa
        from pyarrow import csv

        options = csv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=True)
        table = csv.read_csv(str(path), convert_options=options)
        return nw.from_native(table.to_pandas(types_mapper=pd.ArrowDtype)).lazy()

    def scan_json(self, path: Location) -> nw.LazyFrame[Any]:
        """Scan a JSON-lines file (one trip event per line)."""
        if self.engine is Engine.DUCKDB:
            rel = self.native.read_json(str(path), format="newline_delimited")
            return nw.from_native(rel)
        if self.engine is Engine.SPARK:
            return nw.from_native(self.native.read.options(mode="FAILFAST").json(str(path)))
        import pandas as pd

        frame = pd.read_json(str(path), lines=True, dtype=False, convert_dates=False)
        return nw.from_native(frame.convert_dtypes(dtype_backend="pyarrow")).lazy()

    def from_arrow(self, table: pa.Table) -> nw.LazyFrame[Any]:
        """A small Arrow table (a lookup) as a lazy frame on this engine, joinable with its other frames."""
        if self.engine is Engine.DUCKDB:
            return nw.from_native(self.native.from_arrow(table))
        if self.engine is Engine.SPARK:
            # As Arrow, not pandas: Spark cannot infer types from an empty pandas frame (no hash seen twice).
            return nw.from_native(self.native.createDataFrame(table))
        import pandas as pd

        return nw.from_native(table.to_pandas(types_mapper=pd.ArrowDtype)).lazy()

    def empty(self, types: dict[str, DType]) -> nw.LazyFrame[Any]:
        """A frame of no rows with these columns and types."""
        table = pa.schema([(name, arrow_type(dtype)) for name, dtype in types.items()]).empty_table()
        return self.from_arrow(table).select(nw.col(name).cast(dtype) for name, dtype in types.items())

    # Writers.

    def write_parquet(self, frame: nw.LazyFrame[Any], folder: Location, partition_by: str | None = None) -> None:
        """Write `frame` as Parquet part files into `folder`, which must not exist yet. With `partition_by`, rows
        go to `folder/<column>=<value>/` by that column's value (which the files then do not hold): one pass
        over the data writes every part."""
        native = frame.to_native()
        parts = [partition_by] if partition_by else []
        if self.engine is Engine.SPARK:
            native.write.mode("errorifexists").partitionBy(*parts).parquet(str(folder))
            return
        folder = Path(str(folder))  # the embedded engines write local files only
        if self.engine is Engine.DUCKDB:
            if parts:
                native.to_parquet(str(folder), compression=PARQUET_COMPRESSION, partition_by=parts)
            else:
                folder.mkdir(parents=True)
                native.to_parquet(str(folder / "part-0.parquet"), compression=PARQUET_COMPRESSION)
            return
        folder.mkdir(parents=True)
        table = frame.collect().to_arrow()
        if parts:
            pq.write_to_dataset(table, folder, partition_cols=parts, compression=PARQUET_COMPRESSION)
        else:
            pq.write_table(table, folder / "part-0.parquet", compression=PARQUET_COMPRESSION)

    @contextmanager
    def spilling(self) -> Iterator[None]:
        """Run the plans inside under a memory bound where they would hold much (a group-by or a sort over
        every row): on DuckDB, `DUCKDB_SPILL_MEMORY` (or the settings' limit), past which its operators spill
        to the scratch folder, so the memory they take does not grow with the rows they read."""
        if self.engine is not Engine.DUCKDB or self.memory_limit:
            yield
            return
        spill = str(self.scratch())
        if self.native.execute("SELECT current_setting('temp_directory')").fetchone()[0] != spill:
            self.native.execute(f"SET temp_directory = '{spill}'")  # DuckDB's default: `.tmp` in the cwd
        self.native.execute(f"SET memory_limit = '{DUCKDB_SPILL_MEMORY}'")
        try:
            yield
        finally:
            self.native.execute("RESET memory_limit")

    # Adapters for what narwhals' backends do not share.

    def sample(self, frame: nw.LazyFrame[Any], rows: int, seed: int) -> nw.LazyFrame[Any]:
        """Up to `rows` rows of `frame` drawn at random (all of them when it has fewer), the same for a seed."""
        native = frame.to_native()
        if self.engine is Engine.DUCKDB:
            return nw.from_native(
                native.query("t", f"SELECT * FROM t USING SAMPLE reservoir({rows} ROWS) REPEATABLE ({seed})")
            )
        if self.engine is Engine.SPARK:
            total = native.count()
            if total <= rows:
                return frame
            # Bernoulli sampling draws about the fraction asked: ask a little more, keep `rows`.
            return nw.from_native(native.sample(fraction=min(1.0, 1.1 * rows / total), seed=seed).limit(rows))
        table = frame.collect().to_native()
        return nw.from_native(table.sample(n=min(rows, len(table)), random_state=seed)).lazy()

    def seconds_between(self, frame: nw.LazyFrame[Any], start: str, end: str, name: str) -> nw.LazyFrame[Any]:
        """Add `name`: whole seconds from `start` to `end` (negative when `end` is earlier)."""
        if self.engine is Engine.SPARK:
            # narwhals has no dt.total_seconds on Spark; timestampdiff works on TIMESTAMP_NTZ and truncates
            # toward zero like the other engines.
            from pyspark.sql import functions as F

            native = frame.to_native().withColumn(name, F.expr(f"timestampdiff(SECOND, `{start}`, `{end}`)"))
            return nw.from_native(native).with_columns(nw.col(name).cast(nw.Int64()))
        return frame.with_columns((nw.col(end) - nw.col(start)).dt.total_seconds().cast(nw.Int64()).alias(name))

    def plus_seconds(self, frame: nw.LazyFrame[Any], start: str, seconds: str, name: str) -> nw.LazyFrame[Any]:
        """Add `name`: the time `start` plus `seconds` (an integer column)."""
        if self.engine is Engine.SPARK:
            from pyspark.sql import functions as F

            native = frame.to_native().withColumn(name, F.expr(f"timestampadd(SECOND, `{seconds}`, `{start}`)"))
        elif self.engine is Engine.DUCKDB:
            # narwhals cannot cast an integer to a DuckDB interval; to_seconds can.
            native = frame.to_native().project(f'*, "{start}" + to_seconds("{seconds}") AS "{name}"')
        else:
            return frame.with_columns((nw.col(start) + nw.col(seconds).cast(nw.Duration("s"))).alias(name))
        return nw.from_native(native).with_columns(nw.col(name).cast(nw.Datetime("us")))

    def with_hash(self, frame: nw.LazyFrame[Any], columns: tuple[str, ...], name: str) -> nw.LazyFrame[Any]:
        """Add `name`: a 64-bit hash of the `columns`, equal on rows the engine's grouping finds equal (nulls in
        the same places, and on DuckDB and Spark 0.0 and -0.0, any NaN); unequal rows may collide."""
        native = frame.to_native()
        if self.engine is Engine.SPARK:
            from pyspark.sql import functions as F

            return nw.from_native(native.withColumn(name, F.xxhash64(*columns)))
        if self.engine is Engine.DUCKDB:
            return nw.from_native(native.project(f"*, hash({', '.join(map(_quoted, columns))}) AS {_quoted(name)}"))
        import pandas as pd

        hashes = pd.util.hash_pandas_object(native[list(columns)], index=False)
        return nw.from_native(native.assign(**{name: hashes})).lazy()

    def with_zones(
        self, frame: nw.LazyFrame[Any], index: ZoneIndex, points: dict[str, tuple[str, str]]
    ) -> nw.LazyFrame[Any]:
        """Add zone id columns from coordinates: `points` maps each new column to its (longitude, latitude). The
        index is queried a batch at a time where the engine runs: a vectorized DuckDB function, an Arrow UDF
        on Spark executors (the index broadcast once), numpy arrays on pandas."""
        if self.engine is Engine.SPARK:
            return nw.from_native(_spark_zones(frame.to_native(), index, points))
        if self.engine is Engine.DUCKDB:
            function = f"tlc_zone_{id(index)}"
            if function not in self._functions:
                _register_zone_function(self.native, function, index)
                self._functions.add(function)
            columns = ", ".join(f'{function}("{lon}", "{lat}") AS "{out}"' for out, (lon, lat) in points.items())
            return nw.from_native(frame.to_native().project(f"*, {columns}"))
        import pandas as pd

        native = frame.collect().to_native()
        coordinates = {
            out: (_floats(pa.array(native[lon])), _floats(pa.array(native[lat]))) for out, (lon, lat) in points.items()
        }
        zones = {out: pd.array(ids, "int32[pyarrow]") for out, ids in fill_zones(index, coordinates).items()}
        return nw.from_native(native.assign(**zones)).lazy()


def _register_zone_function(con: Any, name: str, index: ZoneIndex) -> None:
    """The index as a vectorized DuckDB function of (longitude, latitude), nulls passed in as NaN."""
    from duckdb.sqltypes import DOUBLE, INTEGER

    def assign(lon: pa.Array, lat: pa.Array) -> pa.Array:
        return pa.array(index.assign(_floats(lon), _floats(lat)), type=pa.int32())

    con.create_function(name, assign, [DOUBLE, DOUBLE], INTEGER, type="arrow", null_handling="special")


def _floats(values: Any) -> np.ndarray:
    """Arrow doubles as numpy, nulls as NaN."""
    return values.to_numpy(zero_copy_only=False) if values.null_count == 0 else values.fill_null(np.nan).to_numpy()


def _spark_zones(frame: Any, index: ZoneIndex, points: dict[str, tuple[str, str]]) -> Any:
    from pyspark.sql.functions import arrow_udf

    shipped = frame.sparkSession.sparkContext.broadcast(index.to_wkb())
    built: dict[str, ZoneIndex] = {}  # travels with the function: one index per worker process, not per batch

    @arrow_udf("int")  # type: ignore[call-overload]
    def assign(lon: pa.Array, lat: pa.Array) -> pa.Array:
        if "index" not in built:
            built["index"] = ZoneIndex.from_wkb(shipped.value)
        return pa.array(built["index"].assign(_floats(lon), _floats(lat)), type=pa.int32())

    for out, (lon, lat) in points.items():
        frame = frame.withColumn(out, assign(frame[lon], frame[lat]))
    return frame


def with_null_columns(frame: nw.LazyFrame[Any], columns: dict[str, DType]) -> nw.LazyFrame[Any]:
    """Add all-null columns of the given types (for columns a source file does not have)."""
    if not columns:
        return frame
    if frame.implementation.is_pandas():
        # narwhals builds pandas literals with numpy dtypes, which cannot hold a null integer.
        import pandas as pd

        native = frame.collect().to_native()
        nulls = {
            name: pd.Series(pd.NA, index=native.index, dtype=pd.ArrowDtype(arrow_type(dtype)))
            for name, dtype in columns.items()
        }
        return nw.from_native(native.assign(**nulls)).lazy()
    return frame.with_columns(nw.lit(None, dtype=dtype).alias(name) for name, dtype in columns.items())


def with_math(frame: Any, columns: Mapping[str, tuple[str, tuple[str, ...]]]) -> Any:
    """Add columns computed by a math function narwhals lacks, `asin` or `atan2` (y, then x), with the engine's
    own: `columns` maps each new column to its function and the columns it reads. Their names are SQL's
    (DuckDB and Spark) and Arrow's; the frame may be lazy or eager, on DuckDB, Spark, pandas or Arrow (the
    online path)."""
    native, implementation = frame.to_native(), frame.implementation
    if implementation.is_duckdb():
        sql = ", ".join(f"{f}({', '.join(map(_quoted, a))}) AS {_quoted(out)}" for out, (f, a) in columns.items())
        return nw.from_native(native.project(f"*, {sql}"))
    if implementation.is_spark_like():
        from pyspark.sql import functions as F

        return nw.from_native(native.withColumns({out: getattr(F, f)(*a) for out, (f, a) in columns.items()}))
    import pyarrow.compute as pc

    if implementation.is_pyarrow():
        for out, (f, a) in columns.items():
            native = native.append_column(out, getattr(pc, f)(*(native[c] for c in a)))
        return nw.from_native(native)
    import pandas as pd

    computed = {
        out: pd.arrays.ArrowExtensionArray(getattr(pc, f)(*(pa.array(native[c], from_pandas=True) for c in a)))
        for out, (f, a) in columns.items()
    }
    result = nw.from_native(native.assign(**computed))
    return result.lazy() if isinstance(frame, nw.LazyFrame) else result


def _quoted(name: str) -> str:
    """A column name as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def arrow_type(dtype: DType) -> Any:
    """The Arrow type narwhals maps `dtype` to."""
    empty = nw.from_native(pa.table({"x": pa.nulls(0)}))
    return empty.select(nw.col("x").cast(dtype)).to_native().schema.field("x").type


def _select(frame: nw.LazyFrame[Any], columns: list[str] | None) -> nw.LazyFrame[Any]:
    return frame.select(columns) if columns is not None else frame


def _is_engine_data_error(exc: Exception) -> bool:
    """Whether an engine failed on a value: an error of DuckDB, Spark or Arrow, or a ValueError that pandas,
    numpy or Arrow raised converting one. A ValueError raised anywhere else (our own code) is a bug, not bad
    data, and keeps its traceback."""
    module = type(exc).__module__.lstrip("_")  # DuckDB raises from `_duckdb`
    if module.startswith(("duckdb", "pyspark", "py4j", "pyarrow")):
        return True
    return isinstance(exc, ValueError) and _raised_in(exc, ("pandas", "numpy", "pyarrow"))


def _raised_in(exc: Exception, packages: tuple[str, ...]) -> bool:
    """Whether the innermost frame of `exc`'s traceback runs code of one of `packages`."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).startswith(packages)


def record_batches(frame: nw.LazyFrame[Any], rows: int) -> Generator[pa.RecordBatch, None, None]:
    """A lazy frame's rows, in its order, as Arrow record batches of at most `rows` rows: DuckDB streams them
    (only its sort, if the frame ends in one, holds every row); other engines collect the frame first."""
    native = frame.to_native()
    if frame.implementation is nw.Implementation.DUCKDB:
        with native.to_arrow_reader(batch_size=rows) as reader:  # closed, query and all, if the caller stops early
            yield from reader
        return
    yield from frame.collect().to_arrow().to_batches(max_chunksize=rows)
