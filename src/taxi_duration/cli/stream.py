"""`taxi-duration stream` and `taxi-duration replay`: the streaming commands, which `cli.py` adds."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from taxi_duration.cli.common import ConfigOpt, InputsArg, SparkMasterOpt, console, settings_from
from taxi_duration.core.config import CHAMPION, PRETRIP_CHAMPION

if TYPE_CHECKING:
    from taxi_duration.core.config import Settings
    from taxi_duration.serve.holder import ModelHolder, ReloadStatus
    from taxi_duration.stream.writers import Writer


def stream(
    input_dir: Annotated[Path, typer.Option("--input", help="Landing folder of JSON-lines trip events.")],
    output: Annotated[
        Path, typer.Option("--output", help="Folder for quarantine/ and, without --to, predictions/ (Parquet).")
    ],
    checkpoint: Annotated[
        Path, typer.Option(help="The stream's checkpoint: files taken, dedup state. Keep it to resume exactly once.")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help=f"Model URI. Default: both champions, {CHAMPION} (with_distance) and {PRETRIP_CHAMPION}, whichever "
            "exist: an event with trip_distance goes to the first, one without to the second.",
            show_default=False,
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL table the predictions are upserted into on (trip_id, model_version), created on first "
            "use, instead of OUTPUT/predictions; the database is TAXI_DURATION_POSTGRES_URL, as for `predict`.",
            show_default=False,
        ),
    ] = None,
    available_now: Annotated[
        bool, typer.Option("--available-now", help="Take every file landed so far, then stop (backfills, cron).")
    ] = False,
    trigger_seconds: Annotated[
        float | None, typer.Option(help="Start a micro-batch this often (default from settings).", show_default=False)
    ] = None,
    max_files_per_trigger: Annotated[
        int | None,
        typer.Option(help="At most this many files a micro-batch (default from settings).", show_default=False),
    ] = None,
    spark_master: SparkMasterOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Score trip events as they land, exactly once: Spark Structured Streaming over a landing folder.

    Each event is a trip request (a string trip_id, the pickup time, zones or coordinates, passengers,
    distance; TLC or canonical names). Predictions, each naming the model and feature set that scored it, go
    to OUTPUT/predictions (or, with --to, a PostgreSQL table), bad lines with their reason to
    OUTPUT/quarantine; a trip_id delivered again is dropped. A landed file is read once it has stopped
    changing, and bytes appended later are read later; .gz files are read. Without --model the stream follows
    the champion aliases, switching between batches. Stop it with Ctrl-C or SIGTERM (it prints its summary),
    or kill it: restarted on the same checkpoint, it resumes where it was, and no trip is written twice
    (docs/streaming.md).
    """
    from taxi_duration.cli import render
    from taxi_duration.serve.holder import ModelHolder
    from taxi_duration.stream import predictions as streaming
    from taxi_duration.stream.checkpoint import check_folders
    from taxi_duration.stream.writers import sink_of

    settings = settings_from(
        config,
        spark_master=spark_master,
        stream_trigger_seconds=trigger_seconds,
        stream_max_files_per_trigger=max_files_per_trigger,
    )
    url = _database(settings, to)
    check_folders(input_dir, output, checkpoint, sink_of(to))  # before the model and Spark load: fail fast
    holder = ModelHolder(settings, model)
    try:
        with console.status(f"loading {model or 'the champions'}"):
            champions = holder.start()
        writer = _writer(output, to, url)
        console.print(render.stream_start(champions.named(), input_dir, output, settings, available_now))
        if to is not None:
            console.print(writer.where(), highlight=False)
        holder.on_reload = _announce_reloads(holder)
        run = streaming.run(
            settings,
            holder.latest,
            input_dir,
            output,
            checkpoint,
            available_now,
            on_progress=lambda p: console.print(render.stream_progress(p), highlight=False),
            on_refused=lambda name, why: console.print(f"{input_dir / name}: not read: {why}", highlight=False),
            stop=_stop_on_signals(),
            writer=writer,
        )
    finally:
        holder.close()
    console.print(render.stream_summary(run, writer.where()), highlight=False)


def _database(settings: Settings, to: str | None) -> str | None:
    """The database of `--to`, reached once before anything is written, so that a stream that could not write its
    predictions never makes its checkpoint; None without `--to`."""
    from taxi_duration.ingest import postgres

    if to is None:
        return None
    url = postgres.configured_url(settings)
    with postgres.connect(url):
        return url


def _writer(output: Path, to: str | None, url: str | None) -> Writer:
    """Where the scored batches go: Parquet files in `output`, or the PostgreSQL table `to` at `url` (and the
    quarantine in `output`)."""
    from taxi_duration.stream.writers import ParquetWriter, PostgresWriter

    if to is None or url is None:
        return ParquetWriter(output)
    return PostgresWriter(url, to, output)


def _announce_reloads(holder: ModelHolder) -> Callable[[ReloadStatus], None]:
    """What the stream says when an alias moves: each batch asks for the versions the aliases name now, a moved
    one is loaded, checked and used from the next batch on, and one that fails leaves the current one scoring."""
    said: set[str] = set()

    def champions_now() -> str:
        return holder.current.named() if holder.current else "nothing"

    def switched(status: ReloadStatus) -> None:
        if status.outcome == "loaded":
            console.print(f"now scoring with {champions_now()}", highlight=False)
        elif status.outcome == "failed" and f"{status.source} {status.refused}" not in said:
            said.add(f"{status.source} {status.refused}")  # once a version, not once a batch
            console.print(f"{status.source}: {status.error}; still scoring with {champions_now()}", highlight=False)

    return switched


def _stop_on_signals() -> threading.Event:
    """An event Ctrl-C and a service manager's SIGTERM set, so that the stream stops between batches with its
    summary (an exception raised in a call to the JVM would leave py4j's traceback on the screen instead);
    asked twice, it stops now."""
    stop = threading.Event()

    def stopping(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stopping)
    return stop


def replay(
    inputs: InputsArg,
    to: Annotated[Path, typer.Option(help="Landing folder the event files are renamed into.")],
    rate: Annotated[float | None, typer.Option(help="Events a second.", show_default=False)] = None,
    speedup: Annotated[
        float | None, typer.Option(help="The trips' own pickup clock, this many times faster.", show_default=False)
    ] = None,
    rows_per_file: Annotated[int, typer.Option(help="Events a file.")] = 1000,
    config: ConfigOpt = None,
) -> None:
    """Turn trip files (any TLC variant) into JSON-lines trip events that land whole, in pickup order, at a pace.

    Each event has a stable trip_id (source file stem and row number), the pickup, zones, passengers and
    distance, no drop-off. Without --rate or --speedup, files land as fast as they are written.
    """
    from taxi_duration.ingest.inputs import check_all, discover
    from taxi_duration.stream import replay as replaying

    settings = settings_from(config)
    files = check_all(discover(inputs))
    with console.status("reading trips"):
        table = replaying.event_table(settings, files)
    stem = files[0].path.stem if len(files) == 1 else f"{files[0].path.stem}+{len(files) - 1}"
    landed = [0, 0]  # files, events

    def show(path: Path, rows: int, left_s: float | None) -> None:
        landed[0], landed[1] = landed[0] + 1, landed[1] + rows
        left = "" if left_s is None else f", about {left_s:,.0f} s left"
        status.update(f"landed {path.name}: {landed[1]:,} of {table.num_rows:,} events{left}")

    try:
        with console.status(f"replaying {table.num_rows:,} events into {to}") as status:
            paths = replaying.replay(table, to, stem, rows_per_file, rate, speedup, on_file=show)
    except KeyboardInterrupt:
        console.print(
            f"stopped: {landed[1]:,} of {table.num_rows:,} events landed in {landed[0]:,} file(s) in {to}; "
            "the rest did not land"
        )
        raise typer.Exit(130) from None
    console.print(f"{table.num_rows:,} events in {len(paths):,} file(s) landed in {to}")
