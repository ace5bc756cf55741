"""The set-up a newcomer meets: `scripts/setup.sh` and the Makefile, run as they are."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_clean_keeps_the_mlflow_registry_and_clean_all_says_it_removes_it(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path)
    store = tmp_path / "data" / "mlflow" / "mlflow.db"
    synthetic = tmp_path / "data" / "synthetic" / "green_tripdata_2023-01.parquet"
    for path in (store, synthetic, tmp_path / ".pytest_cache" / "x"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")

    clean = subprocess.run(["make", "clean"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0, clean.stderr
    assert store.exists()
    assert not synthetic.parent.exists()
    assert not (tmp_path / ".pytest_cache").exists()
    assert "data/mlflow" in clean.stdout
    assert "make clean-all" in clean.stdout

    clean_all = subprocess.run(["make", "clean-all"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert clean_all.returncode == 0, clean_all.stderr
    assert not (tmp_path / "data").exists()
    assert "every MLflow run, artifact and registered model version" in clean_all.stdout


def _java_major() -> str | None:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=60).stderr
    except OSError:
        return None
    found = re.search(r'version "(\d+)', out)
    return found.group(1) if found else None


@pytest.mark.skipif(_java_major() not in ("17", "21"), reason="setup.sh would install Java")
def test_setup_finds_python_without_noise(tmp_path: Path) -> None:
    # An installed virtualenv (this one's Python, stamped as set up): the script only probes and checks.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    stamp = subprocess.run("cksum < pyproject.toml", shell=True, cwd=ROOT, capture_output=True, text=True)
    (venv / f".installed-{stamp.stdout.split()[0]}").touch()
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"} | {"VENV": str(venv)}
    run = subprocess.run(["bash", "scripts/setup.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert run.stdout.startswith("setup: ready (Python 3.")
