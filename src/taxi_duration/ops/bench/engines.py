"""`taxi-duration bench engines`: the prepare job on every engine and on the hand-written references.

The job is `taxi-duration validate --features` (read Parquet -> validate -> features -> write Parquet) on
synthetic data of each size. Each run is a fresh process measured by `measure.run_measured`: wall time and
the peak memory of its whole process tree (a JVM included), optionally under a memory cap. A run that
fails (out of memory, killed by the cap) is recorded with `ok: false`, never dropped.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from taxi_duration.core.errors import UsageError
from taxi_duration.core.months import parse_months
from taxi_duration.core.process import tree_cpu
from taxi_duration.ops.bench.measure import run_measured, sampling_rss

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from taxi_duration.engines.frames import Runtime
    from taxi_duration.ingest.inputs import InputFile
    from taxi_duration.ingest.quality import QualityReport

# Ours: the package's CLI on each engine. References: the same job written by hand (reference/).
OURS = {"duckdb": "duckdb", "pandas": "pandas", "spark": "spark"}
REFERENCES = ("duckdb-sql", "pyspark", "polars")
ENGINES = (*OURS, *REFERENCES)
MONTHS = "2023-01..2023-03"


@dataclass(frozen=True)
class Result:
    """One measured run, as `results.json` lists it."""

    engine: str
    rows: int
    wall_s: float
    peak_rss_bytes: int
    ok: bool
    cpu_s: float = 0.0
    error: str = ""

    @property
    def rows_per_s(self) -> float:
        """Input rows processed per second of wall time."""
        return self.rows / self.wall_s if self.wall_s else 0.0


def command(engine: str, data: Path, out: Path) -> list[str]:
    """The command that runs the job on `engine`."""
    if engine in OURS:
        return [
            sys.executable,
            "-m",
            "taxi_duration",
            "validate",
            str(data),
            "--out",
            str(out),
            "--features",
            "--engine",
            OURS[engine],
        ]
    if engine in REFERENCES:
        files = sorted(str(p) for p in data.glob("*.parquet"))
        return [sys.executable, "-m", "taxi_duration.ops.bench.reference", engine, str(out), *files]
    raise UsageError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")


def synthetic(rows: int, data_dir: Path, seed: int = 0) -> Path:
    """Synthetic input of `rows` trips over three months, made once and reused."""
    from taxi_duration.ingest.synth import generate

    folder = data_dir / f"synthetic-{rows}-seed{seed}"
    if not any(folder.glob("*.parquet")):
        shutil.rmtree(folder, ignore_errors=True)
        generate(rows, parse_months(MONTHS), folder, seed=seed)
    return folder


def run(
    sizes: list[int],
    engines: list[str],
    data_dir: Path,
    *,
    memory_limit: int | None = None,
    timeout: float | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Measure every engine on every size, smallest size first."""
    for engine in engines:
        if engine not in ENGINES:
            raise UsageError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    results = []
    for rows in sorted(sizes):
        data = synthetic(rows, data_dir)
        for engine in engines:
            scratch = Path(tempfile.mkdtemp(prefix="bench-", dir=data_dir))
            try:
                m = run_measured(command(engine, data, scratch / "out"), memory_limit=memory_limit, timeout=timeout)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            ok = m.returncode == 0
            error = "" if ok else (m.stderr_tail.strip().splitlines() or [f"exit {m.returncode}"])[-1][:300]
            if not ok and m.returncode in (-9, 137):
                error = f"killed (exit {m.returncode}): out of memory under the cap" if memory_limit else error
            result = Result(engine, rows, round(m.wall_s, 3), m.peak_rss_bytes, ok, round(m.cpu_s, 3), error)
            results.append(result)
            if on_result:
                on_result(result)
    return results


def write(results: list[Result], out: Path, *, memory_limit: int | None = None) -> None:
    """`results.json`, `results.md` and `results.png` in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    (out / "results.md").write_text(markdown(results, memory_limit))
    chart(results, out / "results.png")


def markdown(results: list[Result], memory_limit: int | None = None) -> str:
    """The results as a Markdown table, with each run's time relative to the DuckDB SQL reference."""
    reference = {r.rows: r.wall_s for r in results if r.engine == "duckdb-sql" and r.ok}
    cap = f" (memory cap {memory_limit / 2**30:.1f} GiB)" if memory_limit else ""
    lines = [
        f"| engine | rows | wall s | CPU s | rows/s | peak RSS MiB | vs DuckDB SQL | ok{cap} |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        ratio = f"{r.wall_s / reference[r.rows]:.2f}x" if r.ok and r.rows in reference else ""
        status = "ok" if r.ok else f"failed: {r.error}"
        rate = f"{r.rows_per_s:,.0f}" if r.ok else ""  # a failed run processed no rows per second
        mib = f"{r.peak_rss_bytes / 2**20:,.0f}"
        times = f"{r.wall_s:.1f} | {r.cpu_s:.1f}"
        lines.append(f"| {r.engine} | {r.rows:,} | {times} | {rate} | {mib} | {ratio} | {status} |")
    return "\n".join(lines) + "\n"


def in_process(runtime: Runtime, files: list[InputFile], out: Path) -> tuple[Result, QualityReport]:
    """The same job on an engine already open in this process (a notebook's, a cluster's driver), timed.

    Memory is this process tree's, sampled while the job runs: a local Spark JVM counts, a cluster's
    executors do not. The engine's start-up is not timed (it was opened before).
    """
    from taxi_duration.ingest.quality import validate

    rows = sum(f.rows for f in files)
    with sampling_rss() as peak:
        started, cpu = time.perf_counter(), tree_cpu()
        report = validate(runtime, files, out, overwrite=True, features=True)
        wall, cpu = time.perf_counter() - started, tree_cpu() - cpu
    return Result(str(runtime.engine), rows, round(wall, 3), peak(), True, round(cpu, 3)), report


def chart(results: list[Result], path: Path) -> None:
    """`figure` as a PNG file."""
    figure(results).savefig(path, dpi=110)


def figure(results: list[Result]) -> Figure:
    """Wall time and peak memory per engine and size, side by side."""
    from matplotlib.figure import Figure  # not pyplot: no backend is chosen, none is changed

    engines = list(dict.fromkeys(r.engine for r in results))
    sizes = sorted({r.rows for r in results})
    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2)
    width = 0.8 / len(engines)
    for i, engine in enumerate(engines):
        runs = {r.rows: r for r in results if r.engine == engine}
        xs = [j + i * width for j, size in enumerate(sizes) if size in runs]
        for ax, value in ((axes[0], lambda r: r.wall_s), (axes[1], lambda r: r.peak_rss_bytes / 2**30)):
            bars = ax.bar(xs, [value(runs[s]) if runs[s].ok else 0 for s in sizes if s in runs], width, label=engine)
            for bar, size in zip(bars, [s for s in sizes if s in runs], strict=True):
                if not runs[size].ok:
                    ax.annotate("failed", (bar.get_x() + width / 2, 0), ha="center", va="bottom", rotation=90)
    for ax, title in ((axes[0], "wall time (s)"), (axes[1], "peak memory of the process tree (GiB)")):
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))], [f"{s:,} rows" for s in sizes])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    fig.suptitle("read Parquet -> validate -> features -> write Parquet")
    fig.tight_layout()
    return fig
