"""The package's shape: sub-packages by stage, imports only downward (the contract `make lint` checks), modules
and functions short enough to read."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "taxi_duration"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# The top of the package: its sub-packages, and the files Python and spark-submit need there.
TOP_FILES = {"__init__.py", "__main__.py", "submit.py"}


def _lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """The contract of pyproject.toml, checked on the package found first under `src`."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", str(ROOT / "pyproject.toml")],
        env={"PYTHONPATH": str(src), "PATH": ""},
        cwd=src,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_top_of_the_package_is_its_stages() -> None:
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    stages = {name for name in entries - TOP_FILES if (PACKAGE / name / "__init__.py").is_file()}
    assert entries - TOP_FILES == stages, f"not a sub-package: {sorted(entries - TOP_FILES - stages)}"
    assert len(stages) <= 12, sorted(stages)
    for stage in stages:
        assert (PACKAGE / stage / "__init__.py").read_text().startswith('"""'), f"{stage} says what it owns"


def test_the_layer_contract_holds() -> None:
    result = _lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{LAYERS} KEPT" in result.stdout
    assert f"{ACYCLIC} KEPT" in result.stdout


LAYERS = "a stage imports only the stages below it"
ACYCLIC = "no import cycle between the modules of a package"


@pytest.mark.parametrize(
    ("module", "violation", "broken"),
    [
        ("core/schema.py", "from taxi_duration.serve import scorer", LAYERS),  # a lower stage imports a higher
        ("stream/landing.py", "from taxi_duration.train import splits", LAYERS),  # independent stages
        ("engines/spark.py", "from taxi_duration.engines import frames", ACYCLIC),  # two modules import each other
    ],
)
def test_an_import_against_the_contract_fails_lint(tmp_path: Path, module: str, violation: str, broken: str) -> None:
    copy = tmp_path / "src" / "taxi_duration"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "data"))
    target = copy / module
    target.write_text(f"{target.read_text()}\n{violation}  # noqa\n")
    result = _lint_imports(tmp_path / "src")
    assert result.returncode != 0
    assert f"{broken} BROKEN" in result.stdout, result.stdout


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60  # of statements: a command's option declarations and a docstring do not count


def _body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = function.body
    if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return (function.end_lineno or body[-1].lineno) - body[0].lineno + 1


def test_no_module_or_function_is_longer_than_a_reader_can_hold() -> None:
    modules, functions = {}, {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text, name = path.read_text(), str(path.relative_to(PACKAGE))
        modules[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions[f"{name}:{node.name}"] = _body_lines(node)
    assert not {m: n for m, n in modules.items() if n > MAX_MODULE_LINES}
    assert not {f: n for f, n in functions.items() if n > MAX_FUNCTION_LINES}
