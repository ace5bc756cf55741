"""The Databricks Asset Bundle (databricks.yml): every task, notebook, entry point and variable it names exists."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import nbformat
import pytest
import typer
import yaml

from taxi_duration.cli.main import app
from taxi_duration.ops.notebook_env import PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "databricks.yml"


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    return yaml.safe_load(BUNDLE.read_text())


def tasks(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for job in bundle["resources"]["jobs"].values() for t in job["tasks"]]


def normalized(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_notebook_task_names_a_notebook_with_a_parameters_cell(bundle: dict[str, Any]) -> None:
    notebooks = [t["notebook_task"] for t in tasks(bundle) if "notebook_task" in t]
    paths = [(BUNDLE.parent / n["notebook_path"]).resolve() for n in notebooks]
    assert sorted(paths) == sorted((ROOT / "notebooks").glob("*.ipynb"))  # every notebook, each once
    for path, task in zip(paths, notebooks, strict=True):
        cells = nbformat.read(path, as_version=4).cells
        assert any("parameters" in c.metadata.get("tags", []) for c in cells), path
        assert set(task["base_parameters"]) <= set(PARAMETERS)  # the widgets where_am_i reads


def test_every_wheel_task_names_the_package_an_entry_point_and_a_command(bundle: dict[str, Any]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    wheels = [t["python_wheel_task"] for t in tasks(bundle) if "python_wheel_task" in t]
    assert wheels
    for task in wheels:
        assert normalized(task["package_name"]) == normalized(project["name"])
        assert task["entry_point"] in project["scripts"]
        assert task["parameters"][0] in commands


def test_tasks_depend_on_tasks_and_run_on_a_defined_cluster_with_the_wheel(bundle: dict[str, Any]) -> None:
    wheel_dir = re.search(r"--wheel-dir (\S+)", bundle["artifacts"]["taxi_duration_wheel"]["build"])
    assert wheel_dir is not None
    for job in bundle["resources"]["jobs"].values():
        keys = [t["task_key"] for t in job["tasks"]]
        clusters = {c["job_cluster_key"] for c in job["job_clusters"]}
        assert len(set(keys)) == len(keys)
        for task in job["tasks"]:
            assert {d["task_key"] for d in task.get("depends_on", [])} <= set(keys[: keys.index(task["task_key"])])
            assert task["job_cluster_key"] in clusters
            assert [Path(lib["whl"]).parent for lib in task["libraries"]] == [Path(wheel_dir[1])]
        assert job["schedule"]["quartz_cron_expression"]


def test_every_variable_used_is_declared_and_the_runtime_has_spark_4(bundle: dict[str, Any]) -> None:
    used = set(re.findall(r"\$\{var\.(\w+)\}", BUNDLE.read_text()))
    assert used <= set(bundle["variables"])
    assert {"data_path", "catalog"} <= used
    # Databricks Runtime 17 is the first with Spark 4.
    assert int(bundle["variables"]["spark_version"]["default"].split(".")[0]) >= 17


def test_notebooks_are_committed_valid_and_without_outputs() -> None:
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        book = nbformat.read(path, as_version=4)
        nbformat.validate(book)
        code = [c for c in book.cells if c.cell_type == "code"]
        assert not any(c.outputs or c.execution_count for c in code), f"{path.name}: clear its outputs"
        assert code[0].metadata.get("tags") == ["parameters"], path.name  # the parameters come first
        assert "notebook_env.where_am_i(" in code[1].source, path.name
