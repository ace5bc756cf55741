"""Reading Spark's event log: a real one, recorded from a two-stage group-by (trimmed to the stage events)."""

from __future__ import annotations

from pathlib import Path

from taxi_duration.ops.bench import stages

RECORDED = Path(__file__).parent / "data" / "spark-eventlog.jsonl"


def test_each_completed_stage_with_its_tasks_and_shuffle_bytes() -> None:
    found = stages.stages(RECORDED.read_text().splitlines())
    assert [s.stage for s in found] == [0, 2, 4, 7]
    first = found[0]
    assert (first.name, first.tasks, first.shuffle_write_bytes, first.shuffle_read_bytes) == ("collect", 2, 570, 0)
    assert found[1].shuffle_read_bytes == 570  # what one stage writes, the next reads
    assert first.wall_s > 0
    assert first.task_cpu_s > 0


def test_totals_add_the_stages_up() -> None:
    found = stages.stages(RECORDED.read_text().splitlines())
    total = stages.totals(found)
    assert total["stages"] == 4
    assert total["shuffle_write_bytes"] == sum(s.shuffle_write_bytes for s in found) == 570 + 348


def test_submit_args_ask_for_a_plain_log_in_the_folder(tmp_path: Path) -> None:
    args = stages.event_log_submit_args(tmp_path)
    assert f"--conf spark.eventLog.dir={tmp_path.as_uri()}" in args
    assert "spark.eventLog.compress=false" in args
    assert args.endswith("pyspark-shell")
