"""Outputs appear whole or not at all, and the temporary folders of killed runs do not pile up."""

from __future__ import annotations

from pathlib import Path

from taxi_duration.core.atomic import atomic_dir, remove_temp_files, run_tag
from tests.conftest import Holding


def test_a_killed_writers_temporary_folder_is_removed_by_the_next_writer_but_never_a_live_ones(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out"
    write = "\n".join(
        [
            "import contextlib, pathlib",
            "from taxi_duration.core.atomic import atomic_dir",
            "stack = contextlib.ExitStack()  # held: the block stays open until the process is killed",
            f"print(stack.enter_context(atomic_dir(pathlib.Path({str(target)!r}))))",
        ]
    )
    killed, live = Holding(write), Holding(write)
    try:
        killed.kill()
        assert Path(killed.said).is_dir()  # SIGKILL leaves it behind
        with atomic_dir(target) as tmp:
            (tmp / "done").write_text("")
        assert not Path(killed.said).exists()
        assert Path(live.said).is_dir()  # another run still writing: untouched
        assert (target / "done").exists()
    finally:
        live.kill()


def test_a_failed_block_leaves_nothing(tmp_path: Path) -> None:
    try:
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "half").write_text("")
            raise RuntimeError("half-way")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []


def test_remove_temp_files_removes_a_dead_runs_file_of_any_name_and_keeps_a_live_ones(tmp_path: Path) -> None:
    dead = Holding("import os; print(os.getpid())")
    dead_tag = run_tag(int(dead.said))
    dead.kill()
    (tmp_path / f".batch-00000003.parquet.tmp-{dead_tag}-0a1b2c3d").write_text("half")
    (tmp_path / f".other.json.tmp-{run_tag()}-0a1b2c3d").write_text("being written")
    (tmp_path / "batch-00000002.parquet").write_text("whole")
    remove_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".other.json.tmp-{run_tag()}-0a1b2c3d",
        "batch-00000002.parquet",
    ]
