"""What the commands show: rich tables and lines built from the package's results, for the commands to print."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from taxi_duration.core import schema
from taxi_duration.core.months import Month
from taxi_duration.core.storage import Location
from taxi_duration.features.definitions import TARGET_RANGE
from taxi_duration.ingest.inputs import InputFile, pickup_months
from taxi_duration.ingest.quality import UNREADABLE_JSONL, QualityReport
from taxi_duration.ingest.validation import REASON_RULES, REPAIRS, UNREADABLE_LINE

if TYPE_CHECKING:  # the trainer and the benchmark load what they need only when they run
    from taxi_duration.core.config import Settings
    from taxi_duration.monitor.drift import Result as DriftResult
    from taxi_duration.ops.bench.engines import Result
    from taxi_duration.stream.predictions import Progress, Run
    from taxi_duration.train.job import Outcome


def inputs_table(files: list[InputFile]) -> Table:
    """`inspect`: one row per file, its format, rows, service, month, zones and how many columns map."""
    table = Table("file", "format", "rows", "service", "month", "zones", "columns mapped / in file")
    for f in files:
        mapped = schema.resolve_aliases(list(f.columns))
        unreadable = f" (+{len(f.bad_lines):,} unreadable lines)" if f.bad_lines else ""
        table.add_row(
            str(f.path),
            f.format,
            f"{f.rows:,}{unreadable}",
            f.service or "unknown",
            _months_of(f),
            "from coordinates" if f.zones_from_coordinates else "in the file",
            f"{len(mapped)}/{len(f.columns)}",
        )
    return table


def column_mapping(f: InputFile) -> list[str]:
    """`inspect`: a file's columns as the readers take them (source -> canonical), lines in rich markup."""
    mapped = schema.resolve_aliases(list(f.columns))
    pairs = [f"{source} -> {canonical}" for canonical, source in mapped.items() if source != canonical]
    if duration := schema.duration_source(f.columns) if schema.DROPOFF not in mapped else None:
        pairs.append(f"{duration} -> {schema.DROPOFF} (pickup + duration in seconds)")
    same = [source for canonical, source in mapped.items() if source == canonical]
    lines = [f"[bold]{f.path.name}[/bold] columns (source -> canonical):"]
    if not f.columns:
        lines.append("  none: the file is empty")
    if pairs:
        lines.append("  " + ", ".join(pairs))
    if same:
        lines.append("  as named: " + ", ".join(same))
    if f.zones_from_coordinates:
        lines.append(f"  {', '.join(schema.ZONES)}: from the coordinates, by the TLC zone shapes")
    if ignored := [c or "(unnamed)" for c in f.columns if c not in mapped.values() and c != duration]:
        lines.append("  not used: " + ", ".join(ignored))
    return lines


def _months_of(f: InputFile) -> str:
    """The month a file's name claims; else, for Parquet, the pickup months its footer records."""
    if f.month is not None:
        return str(Month.from_yyyymm(f.month))
    if found := pickup_months(f):
        first, last = found
        return f"{first} (in data)" if first == last else f"{first}..{last} (in data)"
    return "unknown (not in the name)"


def quality_table(report: QualityReport) -> Table:
    """`validate`: input, clean and quarantined rows, by reason and repair, with their shares."""
    share = 100 / report.input_rows if report.input_rows else 0.0
    table = Table(title=f"Data quality ({report.engine}, {report.elapsed_s:.1f} s)", title_justify="left")
    table.add_column("rows")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    for label, n in (
        ("input", report.input_rows),
        ("clean", report.clean_rows),
        ("quarantined", report.quarantined_rows),
    ):
        table.add_row(f"[bold]{label}", f"{n:,}", f"{n * share:.2f}%")
    for code in REASON_RULES:
        if n := report.by_reason[code]:
            table.add_row(f"  {code}", f"{n:,}", f"{n * share:.2f}%")
    for repair in REPAIRS:
        if n := report.repaired[repair.code]:
            table.add_row(f"repaired: {repair.code}", f"{n:,}", f"{n * share:.2f}%")
    if zones := report.zones_from_coordinates:
        points = 100 / zones["points"] if zones["points"] else 0.0
        for label in ("inside_a_zone", "unknown_zone"):
            n = zones[label]
            table.add_row(f"points {label.replace('_', ' ')}", f"{n:,}", f"{n * points:.2f}%")
    if any(report.by_reason.values()):
        table.caption = "a quarantined row counts under every reason it breaks: reasons may add up to more"
        table.caption_justify = "left"
    return table


def quality_outputs(report: QualityReport, out: Location) -> str:
    """`validate`: where its outputs are."""
    unreadable = f", unreadable lines in {out / UNREADABLE_JSONL}" if report.by_reason[UNREADABLE_LINE] else ""
    return (
        f"clean rows in {out / 'clean'}, quarantined in {out / 'quarantine'}{unreadable}, "
        f"report in {out / 'report.json'}"
    )


def data_table(outcome: Outcome) -> Table:
    """`train`: each part's input, clean, quarantined and modeled rows."""
    rows = Table(title=f"Data ({outcome.split})", title_justify="left")
    modeled = f"modeled ({TARGET_RANGE[0]:g}-{TARGET_RANGE[1]:g} min)"
    for col in ("part", "input rows", "clean", "quarantined", modeled):
        rows.add_column(col, justify="left" if col == "part" else "right")
    for role, report in outcome.quality.items():
        rows.add_row(
            role,
            f"{report.input_rows:,}",
            f"{report.clean_rows:,}",
            f"{report.quarantined_rows:,}",
            f"{outcome.rows[role]:,}",
        )
    return rows


def metrics_table(
    title: str, by_name: dict[str, dict[str, float]], test: dict[str, dict[str, float]] | None = None
) -> Table:
    """Our model's RMSE, MAE, R2 and RMSLE beside the baselines', each baseline with our RMSE / its RMSE."""
    ours = by_name["model"]["rmse"]
    # The legend explains the ratio with the first baseline's own numbers, so it matches a row.
    example = next(((name, m["rmse"]) for name, m in by_name.items() if name != "model" and m["rmse"]), None)
    caption = None
    if example is not None:
        label, theirs = example[0].replace("_", " "), example[1]
        caption = f"({ours / theirs:.2f}x) beside {label}: our RMSE / its RMSE = {ours:.3f} / {theirs:.3f}"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    table.add_column("")
    for metric in ("RMSE", "MAE", "R2", "RMSLE"):
        table.add_column(metric, justify="right")
    if test is not None:
        table.add_column("test RMSE", justify="right")
    for name, m in by_name.items():
        label = "[bold]ours" if name == "model" else name.replace("_", " ")
        ratio = "" if name == "model" else f" ({ours / m['rmse']:.2f}x)" if m["rmse"] else ""
        cells = [f"{m['rmse']:.3f}", f"{m['mae']:.3f}", f"{m['r2']:.3f}", f"{m['rmsle']:.4f}"]
        if test is not None:
            cells.append(f"{test[name]['rmse']:.3f}")
        table.add_row(label + ("" if name == "model" else f"[dim]{ratio}"), *cells)
    return table


def bench_result(r: Result) -> str:
    """`bench engines`: one run, as it finishes: engine, rows, wall time, peak memory, ok or why not."""
    status = "ok" if r.ok else f"FAILED {r.error}"
    return f"{r.engine:>10} {r.rows:>12,} rows {r.wall_s:8.1f} s {r.peak_rss_bytes / 2**20:8,.0f} MiB  {status}"


def drift_table(result: DriftResult) -> Table:
    """`drift`: every check, its statistic, threshold and verdict, the ones that crossed in red."""
    ref, cur = result.reference, result.current
    title = (
        f"Drift: {cur.compared_rows:,} current trips against {ref.compared_rows:,} reference trips "
        f"({result.engine}, {result.elapsed_s:.1f} s)"
    )
    table = Table(title=title, title_justify="left")
    for column in ("check", "statistic", "value", "threshold", "verdict"):
        table.add_column(column, justify="left" if column in ("check", "statistic", "verdict") else "right")
    for c in result.checks:
        verdict = "[red]drift" if c.drifted else "ok"
        table.add_row(c.name, c.statistic_name, f"{c.statistic:.4f}", f"{c.threshold:g}", verdict)
    return table


def stream_start(model: str, input_dir: Path, output: Path, settings: Settings, available_now: bool) -> str:
    """`stream`: what it reads, writes and scores with, and how it triggers."""
    trigger = (
        "every landed file, then stop"
        if available_now
        else f"a batch every {settings.stream_trigger_seconds:g} s, Ctrl-C to stop"
    )
    return (
        f"streaming {input_dir} -> {output} with {model} ({trigger}; a file is read once unchanged for "
        f"{settings.stream_settle_seconds:g} s; at most {settings.stream_max_files_per_trigger:,} files a batch; "
        f"redeliveries recognised for {settings.stream_watermark})"
    )


def stream_progress(p: Progress) -> str:
    """`stream`: one micro-batch, as it ends."""
    dropped = f", {p.dropped:,} redelivered dropped" if p.dropped else ""
    late = f", {p.late:,} late dropped" if p.late else ""
    return (
        f"batch {p.batch}: {p.rows_in:,} events in {p.batch_s:.2f} s, {p.in_per_s:,.0f}/s in, "
        f"{p.out_per_s:,.0f}/s out, backlog {p.backlog:,} file(s){dropped}{late}"
    )


def stream_summary(run: Run, where: str) -> str:
    """`stream`: what the run did, and `where` its outputs are (the writer's own words)."""
    c = run.counts
    reasons = ", ".join(f"{n:,} {why}" for why, n in c.quarantined.most_common()) or "none"
    late = f" and {run.late:,} late" if run.late else ""
    refused = f"; {len(run.refused):,} landed file(s) not read ({', '.join(run.refused)})" if run.refused else ""
    stopped = "stopped: " if run.stopped else ""
    return (
        f"{stopped}{c.batches:,} batch(es) in {run.seconds:.0f} s: {run.read:,} events read, {c.predicted:,} "
        f"predicted, {sum(c.quarantined.values()):,} quarantined ({reasons}), {run.duplicates:,} redelivered"
        f"{late} dropped; backlog {run.backlog:,} file(s){refused}. {where}"
    )
