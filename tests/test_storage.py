"""Locations: local paths and `file://` URIs for the embedded engines; on the Spark path, Hadoop's
filesystems, which keep a URI whole and read a path with spaces as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_duration.core.errors import UsageError
from taxi_duration.core.storage import HadoopPath, glob, location, remove_tree, rename


def test_local_locations_are_paths_and_file_uris_their_local_path() -> None:
    assert location("data/trips") == Path("data/trips")
    assert location("file:///tmp/a b/x.parquet") == Path("/tmp/a b/x.parquet")
    assert location("file:/tmp/x") == Path("/tmp/x")
    assert location("C:\\data") == Path("C:\\data")  # a drive letter is not a scheme


def test_a_cloud_uri_without_spark_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match=r"s3a://bucket/trips: s3a:// paths are read on the Spark path only"):
        location("s3a://bucket/trips")


@pytest.mark.spark
def test_hadoop_paths_keep_uris_whole_and_do_what_the_jobs_need(tmp_path: Path, spark: Any) -> None:
    folder = tmp_path / "with space"
    folder.mkdir()
    pq.write_table(pa.table({"a": [1, 2, 3]}), folder / "x 1.parquet")
    root = location(f"file://{folder}", spark)
    assert isinstance(root, HadoopPath)
    assert str(root) == f"file:{folder}"
    assert root.is_dir()
    assert not root.is_file()
    found = root / "x 1.parquet"
    assert list(root.iterdir()) == [found] == list(glob(location(f"file://{tmp_path}/with*/*.parquet", spark)))
    assert (found.name, found.stem, found.suffix, found.parent) == ("x 1.parquet", "x 1", ".parquet", root)
    assert found.stat().st_size == (folder / "x 1.parquet").stat().st_size
    with found.open("rb") as fh:
        assert pq.read_metadata(fh).num_rows == 3
    assert location(str(folder / "x 1.parquet"), spark).resolve() == found  # a bare path: the default filesystem

    made = root / "made"
    made.mkdir()
    (made / "r.txt").write_text("línea\n")
    with (made / "r.txt").open("r", encoding="utf-8") as fh:
        assert fh.read() == "línea\n"
    rename(made, root / "moved")
    assert not made.exists()
    assert [p.name for p in root.rglob("*.txt")] == ["r.txt"]
    remove_tree(root / "moved")
    assert sorted(p.name for p in folder.iterdir()) == ["x 1.parquet"]
