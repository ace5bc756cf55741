"""Where inputs and outputs are: local paths, or on the Spark path any URI Spark itself can read.

`pathlib.Path` is for local files only: it turns `s3a://bucket/key` into `s3a:/bucket/key`, and a bare
`/data/trips` is read by Spark on the cluster's default filesystem (HDFS on YARN), not on the driver's disk.
So on the Spark path every input and output location is a `HadoopPath`: the subset of `Path` this project
uses (name, `/`, exists, list, glob, open, rename, mkdir), done by Hadoop's `FileSystem` through the
session's JVM. That is the filesystem code Spark's readers and writers run, so the driver sees exactly what
the executors will: the cluster's connectors (`s3a://`, `abfss://`, `gs://`, `dbfs:/`, `hdfs://`), their
credentials from `spark.hadoop.*` settings, and its default filesystem, with no second client library and
no second set of credentials to configure. The embedded engines read local paths (and `file://` URIs).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from taxi_duration.core.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CHUNK = 1 << 20  # bytes moved over the JVM gateway at a time


def location(spec: str | Path, spark: SparkSession | None = None) -> Location:
    """`spec` as a path the job can use: on the Spark path (`spark` given) through Hadoop's FileSystem,
    otherwise a local path (a `file://` URI is taken as its local path).

    Raises:
        UsageError: a URI of another filesystem without Spark.
    """
    if spark is not None:
        return HadoopPath(spark, str(spec))
    if isinstance(spec, Path):
        return spec
    scheme, sep, rest = spec.partition(":")
    if not sep or len(scheme) < 2 or not scheme.isalnum():  # `C:\\data` is a drive, not a scheme
        return Path(spec)
    if scheme.lower() == "file":
        return Path("/" + rest.lstrip("/"))  # file:/x, file:///x
    raise UsageError(f"{spec}: {scheme}:// paths are read on the Spark path only; pass --engine spark")


def rename(source: Location, target: Location) -> None:
    """Move `source` to `target` on the same filesystem (see `HadoopPath.rename` for when it is atomic)."""
    if isinstance(source, Path) and isinstance(target, Path):
        source.rename(target)
        return
    if not (isinstance(source, HadoopPath) and isinstance(target, HadoopPath)):
        raise TypeError(f"cannot move {source} to {target}: one is local, the other is not")
    source.rename(target)


def remove_tree(path: Location) -> None:
    """Delete a folder and everything under it (nothing when it does not exist)."""
    if isinstance(path, HadoopPath):
        path.delete(recursive=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Stat:
    """What `HadoopPath.stat` tells: the size, as `os.stat_result.st_size` does."""

    st_size: int


class HadoopPath:
    """A file or folder as Spark's Hadoop `FileSystem` sees it; `str()` gives the location Spark reads."""

    def __init__(self, spark: SparkSession, path: str | Any) -> None:
        self._spark = spark
        jvm: Any = spark.sparkContext._jvm
        self._path = jvm.org.apache.hadoop.fs.Path(path) if isinstance(path, str) else path
        self._fs = self._path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def _at(self, path: Any) -> HadoopPath:
        return HadoopPath(self._spark, path)

    def __str__(self) -> str:
        return str(self._path.toString())

    def __repr__(self) -> str:
        return f"HadoopPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HadoopPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __deepcopy__(self, memo: dict[int, Any]) -> HadoopPath:
        return self  # immutable; and the Spark session it holds cannot be copied (`dataclasses.asdict` tries)

    def __lt__(self, other: HadoopPath) -> bool:
        return str(self) < str(other)

    def __truediv__(self, name: str) -> HadoopPath:
        return self._at(self._spark.sparkContext._jvm.org.apache.hadoop.fs.Path(self._path, name))  # type: ignore[union-attr]

    @property
    def name(self) -> str:
        """The last part of the path."""
        return str(self._path.getName())

    @property
    def suffix(self) -> str:
        """The file extension, with its dot."""
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        """The name without its extension."""
        return PurePosixPath(self.name).stem

    @property
    def parent(self) -> HadoopPath:
        """The folder holding this path."""
        return self._at(self._path.getParent())

    def with_name(self, name: str) -> HadoopPath:
        """A sibling called `name`."""
        return self.parent / name

    def resolve(self) -> HadoopPath:
        """The fully qualified location (scheme and authority of the filesystem it is on)."""
        return self._at(self._fs.makeQualified(self._path))

    def exists(self) -> bool:
        """Whether a file or folder is there."""
        return bool(self._fs.exists(self._path))

    def is_dir(self) -> bool:
        """Whether this is a folder."""
        return self.exists() and bool(self._fs.getFileStatus(self._path).isDirectory())

    def is_file(self) -> bool:
        """Whether this is a file."""
        return self.exists() and bool(self._fs.getFileStatus(self._path).isFile())

    def stat(self) -> Stat:
        """The file's size."""
        return Stat(int(self._fs.getFileStatus(self._path).getLen()))

    def iterdir(self) -> Iterator[HadoopPath]:
        """The entries of this folder."""
        for status in self._fs.listStatus(self._path):
            yield self._at(status.getPath())

    def glob(self, pattern: str) -> Iterator[HadoopPath]:
        """Entries of this folder matching `pattern` (Hadoop's glob: `*`, `?`, `[ab]`, `{a,b}`)."""
        yield from glob(self / pattern)

    def rglob(self, pattern: str) -> Iterator[HadoopPath]:
        """Files anywhere under this folder whose name matches `pattern`."""
        files = self._fs.listFiles(self._path, True)
        while files.hasNext():
            found = self._at(files.next().getPath())
            if PurePosixPath(found.name).match(pattern):
                yield found

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Create this folder (and its parents: Hadoop always does)."""
        if self.exists() and not exist_ok:
            raise FileExistsError(str(self))
        if not self._fs.mkdirs(self._path):
            raise OSError(f"could not create {self}")

    def rename(self, target: HadoopPath) -> HadoopPath:
        """Move to `target`, which must not exist. Atomic where the filesystem's rename is (local disk,
        HDFS, ABFS with a hierarchical namespace); on S3 and GCS it is a copy, then a delete."""
        if not self._fs.rename(self._path, target._path):
            raise OSError(f"could not rename {self} to {target}")
        return target

    def delete(self, recursive: bool = False) -> None:
        """Remove this file (or folder, with `recursive`), if it exists."""
        self._fs.delete(self._path, recursive)

    def unlink(self, missing_ok: bool = False) -> None:
        """Remove this file."""
        if not missing_ok and not self.exists():
            raise FileNotFoundError(str(self))
        self.delete()

    def open(self, mode: str = "r", **text: Any) -> IO[Any]:
        """Open for reading or writing ('r', 'rb', 'w', 'wb'); text modes take `open`'s encoding options."""
        raw: io.RawIOBase
        if "r" in mode:
            raw = _JavaReader(self._fs.open(self._path), self.stat().st_size)
            binary: IO[bytes] = io.BufferedReader(raw, CHUNK)
        else:
            raw = _JavaWriter(self._fs.create(self._path, True))
            binary = io.BufferedWriter(raw, CHUNK)
        return binary if "b" in mode else io.TextIOWrapper(binary, **text)  # type: ignore[arg-type]

    def read_bytes(self) -> bytes:
        """The whole file."""
        with self.open("rb") as fh:
            return bytes(fh.read())

    def write_bytes(self, data: bytes) -> None:
        """Write the file (replacing it)."""
        with self.open("wb") as fh:
            fh.write(data)

    def write_text(self, text: str) -> None:
        """Write the file as UTF-8 (replacing it)."""
        self.write_bytes(text.encode())


Location = Path | HadoopPath  # what a job reads or writes: a local path, or on the Spark path a HadoopPath


def glob(pattern: HadoopPath) -> Iterator[HadoopPath]:
    """The files and folders matching a Hadoop glob, in order (none when nothing matches)."""
    found = pattern._fs.globStatus(pattern._path) or []
    yield from sorted(pattern._at(status.getPath()) for status in found)


class _JavaReader(io.RawIOBase):
    """A seekable Python file over a Hadoop input stream: what pyarrow and `csv` read from."""

    def __init__(self, stream: Any, size: int) -> None:
        self._stream, self._size, self._pos = stream, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        self._stream.seek(self._pos)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        data = self._stream.readNBytes(min(len(buffer), CHUNK)) if self._pos < self._size else b""
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


class _JavaWriter(io.RawIOBase):
    """A Python file over a Hadoop output stream; the file appears when it is closed."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._stream.write(bytearray(data))  # the gateway passes a bytearray as a Java byte[]
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()
