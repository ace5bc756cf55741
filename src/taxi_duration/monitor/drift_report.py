"""What `taxi-duration drift` writes: `summary.json`, a self-contained `report.html`, and its plots as PNG.

The plots are matplotlib figures drawn from the counts the engine returned (`drift.py`), inlined in the page
as base64 PNG so the page travels alone (a mail, a CI artifact), and also written under `plots/`. The output
folder appears whole or not at all (`atomic.py`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from taxi_duration.core.atomic import atomic_dir
from taxi_duration.monitor.drift import KS, MEASURES, PREDICTION_MEASURE, PSI, Check, Counts, Measure, Result, cdfs

SUMMARY, REPORT, PLOTS = "summary.json", "report.html", "plots"
TOP_CATEGORIES = 20  # categories a bar chart shows: those whose share moved most


def write(result: Result, out: Path, *, overwrite: bool = False) -> None:
    """Write `out/summary.json`, `out/report.html` and `out/plots/*.png`, all or nothing."""
    figures = draw(result)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / SUMMARY).write_text(json.dumps(result.summary(), indent=2, default=str) + "\n")
        (tmp / PLOTS).mkdir()
        images = {}
        for name, fig in figures.items():
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=90)
            images[name] = buffer.getvalue()
            (tmp / PLOTS / f"{name}.png").write_bytes(images[name])
        (tmp / REPORT).write_text(page(result, images))


def draw(result: Result) -> dict[str, Figure]:
    """Every plot of the report, by name: the overview first, then one per compared column."""
    figures = {"overview": overview(result.checks)}
    by_name = {c.name: c for c in result.checks}
    measures = [*MEASURES, *([PREDICTION_MEASURE] if result.model else [])]
    for m in measures:
        check = by_name[f"{m.kind}:{m.column}"]
        ref, cur = result.reference.counts[m.column], result.current.counts[m.column]
        figures[m.column] = shares(m, check, ref, cur) if m.resolution is None else cdf(m, check, ref, cur)
    return figures


def _title(check: Check) -> str:
    verdict = "DRIFT" if check.drifted else "ok"
    return f"{check.name}: {check.statistic_name} {check.statistic:.3f} (threshold {check.threshold:g}) {verdict}"


def overview(checks: list[Check]) -> Figure:
    """Every check's statistic over its threshold: a bar past 1 is drift."""
    fig = Figure(figsize=(8, 0.32 * len(checks) + 1.2), layout="constrained")
    ax = fig.subplots()
    ratios = [c.statistic / c.threshold for c in checks]
    colors = ["tab:red" if c.drifted else "tab:blue" for c in checks]
    ax.barh([c.name for c in checks][::-1], ratios[::-1], color=colors[::-1])
    ax.axvline(1.0, color="black", lw=1)
    ax.set(xlabel="statistic / threshold (past 1: drift)", title="Drift checks")
    return fig


def shares(measure: Measure, check: Check, reference: Counts, current: Counts) -> Figure:
    """Reference and current shares of the categories whose share moved most."""
    n_ref, n_cur = sum(reference.values()), sum(current.values())
    values = set(reference) | set(current)
    moved = sorted(values, key=lambda v: -abs(current.get(v, 0) / n_cur - reference.get(v, 0) / n_ref))
    shown = sorted(moved[:TOP_CATEGORIES])  # a column's values are of one type: zones sort as numbers
    x = np.arange(len(shown))
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.bar(x - 0.2, [reference.get(v, 0) / n_ref for v in shown], 0.4, label="reference")
    ax.bar(x + 0.2, [current.get(v, 0) / n_cur for v in shown], 0.4, label="current")
    ax.set_xticks(x, [str(v) for v in shown], rotation=45 if len(shown) > 8 else 0, fontsize=8)
    more = f", the {len(shown)} of {len(values)} that moved most" if len(values) > len(shown) else ""
    ax.set(ylabel="share of trips", xlabel=f"{measure.column}{more}", title=_title(check))
    ax.legend()
    return fig


def cdf(measure: Measure, check: Check, reference: Counts, current: Counts) -> Figure:
    """Both cumulative distributions, up to the reference's 99.5th percentile."""
    assert measure.resolution is not None
    bins, ref, cur = cdfs(reference, current)
    x = (bins + 1) * measure.resolution  # a bin's CDF holds at its upper edge
    top = x[min(int(np.searchsorted(ref, 0.995)), len(x) - 1)]
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.step(x, ref, where="post", label="reference")
    ax.step(x, cur, where="post", label="current")
    ax.set(xlim=(x[0], top), ylim=(0, 1), xlabel=measure.column, ylabel="share of trips at most x", title=_title(check))
    ax.legend(loc="lower right")
    return fig


def page(result: Result, images: dict[str, bytes]) -> str:
    """The HTML report: verdict, windows, the table of checks, then every plot inlined."""
    summary = result.summary()
    verdict = f"DRIFT: {', '.join(summary['crossed'])}" if summary["crossed"] else "no drift"
    rows = "".join(
        f"<tr class={'drift' if c.drifted else 'ok'}><td>{html.escape(c.name)}</td><td>{c.statistic_name}</td>"
        f"<td>{c.statistic:.4f}</td><td>{c.threshold:g}</td><td>{'drift' if c.drifted else 'ok'}</td>"
        f"<td>{html.escape(_details(c))}</td></tr>"
        for c in result.checks
    )
    windows = "".join(
        f"<tr><td>{role}</td><td>{html.escape(', '.join(Path(f).name for f in w.files))}</td>"
        f"<td>{w.input_rows:,}</td><td>{w.clean_rows:,}</td><td>{w.compared_rows:,}</td><td>{w.sample_rows:,}</td></tr>"
        for role, w in (("reference", result.reference), ("current", result.current))
    )
    model = result.model
    about_model = (
        f"<p>Model {html.escape(str(model['uri']))} ({model['feature_set']}, trained on "
        f"{', '.join(model['train_months'])}, validation RMSE {model['validation_rmse']:.3f} min on "
        f"{model['validate_month']}); predictions on a random sample of up to {model['sample_rows_setting']:,} "
        "trips of each window.</p>"
        if model
        else "<p>No model given: no prediction drift or model error (pass --model).</p>"
    )
    plots = "".join(
        f'<img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        for name, png in images.items()
    )
    statistics = "".join(f"<li><b>{k}</b>: {html.escape(v)}</li>" for k, v in summary["statistics"].items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>taxi-duration drift: {html.escape(verdict)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 60em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }}
tr.drift td {{ background: #fdd; }}
img {{ display: block; max-width: 100%; margin: 1em 0; }}
</style></head><body>
<h1>{html.escape(verdict)}</h1>
<p>{result.engine} engine, {result.elapsed_s:.1f} s, {result.created_at}; {html.escape(summary["rows_compared"])}.</p>
<table><tr><th>window</th><th>files</th><th>rows read</th><th>clean</th><th>compared</th><th>predicted</th></tr>
{windows}</table>
{about_model}
<table><tr><th>check</th><th>statistic</th><th>value</th><th>threshold</th><th>verdict</th><th>details</th></tr>
{rows}</table>
<ul>{statistics}</ul>
{plots}
</body></html>
"""


def _details(check: Check) -> str:
    d = check.details
    if check.statistic_name == KS:
        return f"mean {d['reference_mean']:.3f} -> {d['current_mean']:.3f}, Wasserstein {d['wasserstein']:.3f}"
    if check.statistic_name == PSI:
        return ""
    rmse = (d["current_rmse"], d["reference_rmse"], d["validation_rmse"])
    return "RMSE {:.3f} now, {:.3f} on the reference, {:.3f} logged on validation".format(*rmse)
