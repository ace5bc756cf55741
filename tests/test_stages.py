"""Reading Spark's event log: a real one, recorded from a two-stage group-by (trimmed to the stage events)."""

from __future__ import annotations

import json
from pathlib import Path

from taxi_duration.engines.frames import STEP_PROPERTY
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


def test_stages_are_counted_by_the_step_their_job_ran_in() -> None:
    def job(number: int, stage_ids: list[int], step: str | None) -> str:
        properties = {STEP_PROPERTY: step} if step else {}
        return json.dumps(
            {"Event": "SparkListenerJobStart", "Job ID": number, "Stage IDs": stage_ids, "Properties": properties}
        )

    def stage(number: int, tasks: int) -> str:
        info = {"Stage ID": number, "Stage Attempt ID": 0, "Stage Name": "x at y", "Number of Tasks": tasks}
        return json.dumps({"Event": "SparkListenerStageCompleted", "Stage Info": info})

    log = [job(0, [0], None), stage(0, 1), job(1, [1, 2], "train"), stage(1, 2), stage(2, 3), job(2, [3], "train")]
    found = stages.stages([*log, stage(3, 4), job(3, [4], "evaluate"), stage(4, 5)])
    assert [(s.job, s.step) for s in found] == [(0, ""), (1, "train"), (1, "train"), (2, "train"), (3, "evaluate")]
    steps = stages.by_step(found)
    assert list(steps) == ["", "train", "evaluate"]
    assert (steps["train"]["jobs"], steps["train"]["stages"], steps["train"]["tasks"]) == (2, 3, 9)
    assert stages.totals(found)["jobs"] == 4


def test_submit_args_ask_for_a_plain_log_in_the_folder(tmp_path: Path) -> None:
    args = stages.event_log_submit_args(tmp_path)
    assert f"--conf spark.eventLog.dir={tmp_path.as_uri()}" in args
    assert "spark.eventLog.compress=false" in args
    assert args.endswith("pyspark-shell")


def test_each_executor_peaks_at_its_largest_stage_and_the_driver_is_not_an_executor() -> None:
    def peaks(executor: str, stage: int, jvm: int, python: int, heap: int) -> str:
        metrics = {"ProcessTreeJVMRSSMemory": jvm, "ProcessTreePythonRSSMemory": python, "JVMHeapMemory": heap}
        event = {"Event": "SparkListenerStageExecutorMetrics", "Executor ID": executor, "Stage ID": stage}
        return json.dumps({**event, "Stage Attempt ID": 0, "Executor Metrics": metrics})

    log = [
        peaks("0", 0, 100, 0, 50),
        peaks("0", 1, 80, 70, 40),
        peaks("1", 0, 90, -1, 60),
        peaks("driver", 0, 999, 0, 9),
    ]
    assert stages.executor_peaks(log) == {"0": {"rss": 150, "heap": 50}, "1": {"rss": 90, "heap": 60}}
