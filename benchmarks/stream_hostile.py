"""Prove on a real replayed month that the stream loses nothing, and writes nothing twice, under hostile landing.

Run from the repository root, with a trained model in the store the data dir holds:

    TAXI_DURATION_DATA_DIR=data python benchmarks/stream_hostile.py \
        --trips ../shared/data/green_tripdata_2023-03.parquet --model models:/taxi-duration/1

The month is replayed (`replay.event_table` and `replay.replay`, 500 events a file) into a staging folder, then
landed into the landing folder while a live `taxi-duration stream` (its own process group, its JVM with it,
one-second triggers, four files a batch) runs, the way a careless producer would land it:
- 24 files copied in one go, all given one identical modification time, as the stream starts; the rest once
  it has written its first batch;
- one file gzip-compressed (`.jsonl.gz`);
- one file written in place: half its lines straight into the landing folder (no rename), the rest appended
  about ten seconds later;
- the other files one at a time, then five events delivered again in a new file;
- the files of the month's first day held back and landed last: a day and more older than what the stream saw;
- the whole stream process group SIGKILLed in the middle of a batch (logged in the offsets, not committed) once a
  batch file exists, the in-place file's first half has been admitted and files are still to land, then
  restarted on the same checkpoint; that run is stopped with SIGTERM once everything has landed and it has
  committed five batches, and a last `--available-now` run on the same checkpoint drains what is left.
Then every landed line is counted from the landed files (the `.gz` decompressed) and every landed trip_id is
looked for in `predictions` and `quarantine`: each must be there exactly once, the redelivered ones too. The
last stderr line of each run (its summary) is printed, then PASS (exit 0) or FAIL (exit 1).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_duration.core import schema as s
from taxi_duration.core.config import load_settings
from taxi_duration.ingest.inputs import check_all, discover
from taxi_duration.stream.events import TRIP_ID
from taxi_duration.stream.landing import ADMITTED, later_than
from taxi_duration.stream.replay import event_table, replay
from taxi_duration.stream.writers import PREDICTIONS, QUARANTINE

GROUP = 24  # files copied in one go, one modification time
REDELIVERED = 5  # events landed a second time
IN_PLACE_APPEND_S = 10.0  # how long the in-place writer pauses before appending the rest of its file
STARTED = time.monotonic()


def say(message: str) -> None:
    """One line of evidence, stamped with the seconds since the script started."""
    print(f"[{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


class Stream:
    """A `taxi-duration stream` process in its own process group (its JVM with it), stderr to a file."""

    def __init__(self, name: str, work: Path, env: dict[str, str], model: str, *options: str) -> None:
        self.name = name
        self.log = work / "logs" / f"{name}.stderr"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = [str(Path(sys.executable).with_name("taxi-duration")), "stream", "--model", model]
        command += ["--input", str(work / "landing"), "--output", str(work / "output")]
        command += ["--checkpoint", str(work / "checkpoint"), *options]
        # A file, not a pipe: nobody reads a pipe while the run goes on, and a killed run's last words stay.
        self._stderr: IO[bytes] = self.log.open("wb")
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True
        )
        say(f"{name}: started `taxi-duration stream {' '.join(options)}` (pid {self.process.pid}, its own group)")

    def alive(self) -> bool:
        """The command itself still runs."""
        return self.process.poll() is None

    def kill_group(self) -> None:
        """SIGKILL the whole group: the Python driver and its JVM, mid-whatever."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._stderr.close()

    def wait(self, timeout_s: float) -> int:
        """Wait for the command to end; then make sure nothing of its group outlives it (a JVM left behind)."""
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            say(f"{self.name}: still running after {timeout_s:.0f} s: killed")
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        self._stderr.close()
        return code

    def last_line(self) -> str:
        """The last non-blank line the run wrote on stderr: its summary, when it had time to print one."""
        found = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        return found[-1] if found else "(nothing on stderr)"

    def lines_with(self, text: str) -> list[str]:
        """The run's stderr lines that contain `text`."""
        return [line for line in self.log.read_text(errors="replace").splitlines() if text in line]


def group_gone(pid: int, timeout_s: float = 30.0) -> str:
    """Wait until no process of the group `pid` led is left (a JVM takes a moment to die, or to notice that its
    driver is gone); kill what is left after `timeout_s`. Says what happened."""
    began = time.monotonic()
    while time.monotonic() - began < timeout_s:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return f"group gone after {time.monotonic() - began:.1f} s"
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
    return f"group still alive after {timeout_s:.0f} s: SIGKILLed"


def batch_files(work: Path) -> int:
    """Batch files the stream has written so far (predictions and quarantine)."""
    return sum(len(list((work / "output" / d).glob("batch-*.parquet"))) for d in (PREDICTIONS, QUARANTINE))


def spark_log(work: Path, name: str) -> set[str]:
    """Batch ids in one of Spark's checkpoint logs (`offsets`: planned, `commits`: done)."""
    return {p.name for p in (work / "checkpoint" / name).glob("[0-9]*")}


def in_flight(work: Path) -> bool:
    """A batch is logged in the checkpoint's offsets and not yet committed: a kill now interrupts it."""
    return bool(spark_log(work, "offsets") - spark_log(work, "commits"))


def wait_until(condition: Callable[[], bool], stream: Stream, timeout_s: float, what: str) -> None:
    """Poll until `condition` holds; stop the script if the stream ends or time runs out first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if not stream.alive():
            raise SystemExit(f"{stream.name} ended (exit {stream.process.returncode}) waiting for {what}: {stream.log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{stream.name}: no {what} in {timeout_s:.0f} s")
        time.sleep(0.02)


def month_start(pickups: pa.ChunkedArray) -> datetime:
    """The first day of the month most pickups fall in: a TLC month holds a few strays of other months."""
    months = Counter((t.year, t.month) for t in pickups.to_pylist() if t is not None)
    (year, month), _ = months.most_common(1)[0]
    return datetime(year, month, 1)


class Producer(threading.Thread):
    """Lands the staged files into the landing folder, hostile ways, while the stream runs."""

    def __init__(self, landing: Path, plan: dict[str, Any], pace_s: float) -> None:
        super().__init__(daemon=True)
        self.landing, self.plan, self.pace_s = landing, plan, pace_s
        self.live = threading.Event()  # set by the main thread once the stream has written a batch
        self.killed = threading.Event()  # set by the main thread once the stream is killed
        self.landed_ns = 0
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.landed_files = 0

    def run(self) -> None:
        try:
            self._land()
        except BaseException as exc:  # reported by the main thread, which decides the verdict
            self.error = exc
        finally:
            self.done.set()

    def _put(self, name: str, data: bytes) -> None:
        """Land `data` as a well-behaved producer does: a hidden name, then a rename, a strictly later mtime."""
        tmp = self.landing / f".{name}.part"
        tmp.write_bytes(data)
        self.landed_ns = later_than(tmp, self.landed_ns)
        os.replace(tmp, self.landing / name)
        self.landed_files += 1

    def _land(self) -> None:
        plan = self.plan
        # 1. Copied in one go: a `cp *` gives many files one modification time, which Spark alone takes in any order.
        moment = time.time_ns()
        for f in plan["group"]:
            shutil.copyfile(f, self.landing / f.name)
            os.utime(self.landing / f.name, ns=(moment, moment))
        self.landed_files += len(plan["group"])
        say(f"landed {len(plan['group'])} files at once ({plan['group'][0].name}..{plan['group'][-1].name}), one mtime")
        self.landed_ns = moment
        # The rest lands while the stream is live: the in-place file's first half is seen by a running intake.
        self.live.wait()
        # 2. One file compressed.
        gz: Path = plan["gz"]
        self._put(gz.name + ".gz", gzip.compress(gz.read_bytes()))
        say(f"landed {gz.name}.gz (gzip)")
        # 3. Written in place: half its lines, no rename; the rest later, without a rename either.
        in_place: Path = plan["in_place"]
        lines = in_place.read_bytes().splitlines(keepends=True)
        half = len(lines) // 2
        target = self.landing / in_place.name
        with target.open("wb") as fh:
            fh.writelines(lines[:half])
        self.landed_files += 1
        append_at = time.monotonic() + IN_PLACE_APPEND_S
        say(f"wrote {half} of {len(lines)} lines of {in_place.name} in place (no rename)")
        appended = False

        def append_when_due() -> None:
            nonlocal appended
            if not appended and time.monotonic() >= append_at:
                with target.open("ab") as fh:
                    fh.writelines(lines[half:])
                appended = True
                say(f"appended the other {len(lines) - half} lines of {in_place.name} in place")

        # 4. The rest of the month, one file at a time; from half-way on, only after the kill, so the kill
        # finds files still to land.
        normal: list[Path] = plan["normal"]
        for n, f in enumerate(normal):
            if n == len(normal) // 2 and not self.killed.is_set():
                say(f"landed {n} of {len(normal)} files one at a time; the rest wait for the kill")
                self.killed.wait()
            time.sleep(self.pace_s)
            append_when_due()
            self._put(f.name, f.read_bytes())
        say(f"landed the {len(normal)} files one at a time")
        # 5. Delivered again: the same bytes of events that have landed (and, by now, been scored) before.
        self._put("redelivered.jsonl", b"".join(plan["redelivered"]))
        say(f"landed redelivered.jsonl: {REDELIVERED} events of {plan['redelivered_from']} again")
        # 6. The month's first day, last: a day and more older than anything the stream saw just before.
        for f in plan["late"]:
            time.sleep(self.pace_s)
            append_when_due()
            self._put(f.name, f.read_bytes())
        say(f"landed the first day's {len(plan['late'])} files last ({plan['late'][0].name}..{plan['late'][-1].name})")
        while not appended:  # the in-place writer finishes its file in any case
            time.sleep(0.1)
            append_when_due()


def plan_landing(files: list[Path], table: pa.Table, rows_per_file: int) -> dict[str, Any]:
    """Which staged file lands how: the first day's files last, a group, a `.gz`, one in place, the rest one by one."""
    pickups = table.column(s.PICKUP)
    second_day = month_start(pickups) + timedelta(days=1)
    spans = [pickups.slice(n * rows_per_file, rows_per_file) for n in range(len(files))]
    # A file holding any event of the month's first day (or a stray of an earlier month: pickup order puts
    # them first) is held back.
    late = [f for f, span in zip(files, spans, strict=True) if pc.min(span).as_py() < second_day]
    rest = files[len(late) :]
    if len(rest) < GROUP + 4:
        raise SystemExit(f"{len(files)} files of {rows_per_file} events are too few: give more trips or fewer a file")
    group = rest[:GROUP]
    return {
        "late": late,
        "group": group,
        "gz": rest[GROUP],
        "in_place": rest[GROUP + 1],
        "normal": rest[GROUP + 2 :],
        "redelivered": group[0].read_bytes().splitlines(keepends=True)[-REDELIVERED:],
        "redelivered_from": group[0].name,
        "second_day": second_day,
        "late_latest": max(pc.max(span).as_py() for span in spans[: len(late)]),
        "seen_before_late": max(pc.max(span).as_py() for span in spans[len(late) :]),
    }


def landed_events(landing: Path) -> tuple[int, dict[str, list[str]]]:
    """Every non-blank line of the landed files (`.gz` decompressed): their count, and trip_id -> the files."""
    total, where = 0, defaultdict(list)
    for path in sorted(landing.iterdir()):
        if path.name.startswith((".", "_")):
            continue
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        for line in data.splitlines():
            if line.strip():
                total += 1
                where[json.loads(line)[TRIP_ID]].append(path.name)
    return total, where


def written(output: Path) -> dict[str, list[str]]:
    """trip_id -> the batch files (`predictions/batch-N.parquet`, `quarantine/...`) that hold it, once per row."""
    found: dict[str, list[str]] = defaultdict(list)
    for folder in (PREDICTIONS, QUARANTINE):
        for path in sorted((output / folder).glob("batch-*.parquet")):
            for trip_id in pq.read_table(path, columns=[TRIP_ID]).column(TRIP_ID).to_pylist():
                found[str(trip_id)].append(f"{folder}/{path.name}")
    return found


def admitted_parts(checkpoint: Path, name: str) -> list[Path]:
    """The checkpoint's admitted copies of one landed file, in admission order."""
    return sorted(p for p in (checkpoint / ADMITTED).glob(f"*-{name}") if not p.name.startswith("."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trips", type=Path, default=Path("/work/shared/data/green_tripdata_2023-03.parquet"))
    parser.add_argument("--work", type=Path, help="An empty or new folder for staging, landing, output, checkpoint.")
    parser.add_argument("--model", default="models:/taxi-duration/1", help="The model URI the stream is pinned to.")
    parser.add_argument("--rows-per-file", type=int, default=500)
    parser.add_argument("--pace", type=float, default=0.4, help="Seconds between files landed one at a time.")
    parser.add_argument("--settle", type=float, default=1.0, help="TAXI_DURATION_STREAM_SETTLE_SECONDS of the runs.")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="stream-hostile-"))
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty: give a new --work folder")
    settings = load_settings()
    env = {
        **os.environ,
        "TAXI_DURATION_DATA_DIR": str(settings.data_dir.resolve()),
        "TAXI_DURATION_SPARK_MASTER": "local[2]",
        "TAXI_DURATION_STREAM_SETTLE_SECONDS": str(args.settle),
    }
    options = ("--trigger-seconds", "1", "--max-files-per-trigger", "4")
    landing, staging = work / "landing", work / "staging"
    landing.mkdir(parents=True)
    say(f"work folder {work}; data dir {settings.data_dir.resolve()}; model {args.model}")

    # 1. The month's events, replayed whole into staging.
    table = event_table(settings, check_all(discover([args.trips])))
    files = replay(table, staging, args.trips.stem, args.rows_per_file)
    plan = plan_landing(files, table, args.rows_per_file)
    say(f"replayed {table.num_rows:,} trips of {args.trips.name} into {len(files)} files of {args.rows_per_file}")
    say(
        f"plan: {len(plan['group'])} at once, 1 gz ({plan['gz'].name}), 1 in place ({plan['in_place'].name}), "
        f"{len(plan['normal'])} one by one, {REDELIVERED} redelivered, {len(plan['late'])} of the first day last "
        f"(pickups before {plan['second_day']:%Y-%m-%d})"
    )

    # 2. Land them while a live stream runs; kill -9 it mid-batch; restart; stop; drain.
    producer = Producer(landing, plan, args.pace)
    runs: list[Stream] = []
    codes: dict[str, int | None] = {}
    try:
        first = Stream("run 1 (live, killed)", work, env, args.model, *options)
        runs.append(first)
        producer.start()
        wait_until(lambda: batch_files(work) > 0, first, 300, "a batch file")
        say("run 1 wrote its first batch file: landing the rest while it runs")
        producer.live.set()
        # Kill once the in-place file's first half has been admitted (its tail comes after the restart), files
        # are still to land, and a batch is logged but not committed.
        in_place = plan["in_place"].name
        wait_until(lambda: bool(admitted_parts(work / "checkpoint", in_place)), first, 120, "the in-place half")
        wait_until(lambda: in_flight(work), first, 60, "a batch in flight")
        planned, committed = spark_log(work, "offsets"), spark_log(work, "commits")
        before = batch_files(work)
        first.kill_group()
        codes[first.name] = None
        producer.killed.set()  # the producer does not stop for the consumer's crash
        say(
            f"kill -9 of run 1's process group: {before} batch file(s) written, batches committed up to "
            f"{max(map(int, committed), default=-1)}, batch(es) {sorted(map(int, planned - committed))} logged in "
            f"offsets and not committed (in flight); {producer.landed_files} files landed so far; "
            f"{group_gone(first.process.pid)}"
        )
        time.sleep(3)  # files land while no stream runs
        second = Stream("run 2 (live, restarted on the same checkpoint, SIGTERM)", work, env, args.model, *options)
        runs.append(second)
        # Live until everything has landed and it has committed a few batches of its own, then stopped.
        restart_commits = len(spark_log(work, "commits"))
        wait_until(
            lambda: producer.done.is_set() and len(spark_log(work, "commits")) >= restart_commits + 5,
            second,
            300,
            "run 2's batches",
        )
        if producer.error is not None:
            raise producer.error
        left = len(spark_log(work, "commits"))
        second.process.send_signal(signal.SIGTERM)  # to the command alone, as a service manager stops it
        codes[second.name] = second.wait(180)
        say(
            f"run 2 stopped by SIGTERM after {left - restart_commits}+ batches committed: exit {codes[second.name]}; "
            f"{group_gone(second.process.pid)}"
        )
        final = Stream("run 3 (--available-now drain)", work, env, args.model, *options, "--available-now")
        runs.append(final)
        codes[final.name] = final.wait(600)
        say(f"run 3 ended: exit {codes[final.name]}; {group_gone(final.process.pid)}")
    finally:
        for stream in runs:
            if stream.alive():
                stream.kill_group()

    # 3. The evidence.
    lines, where = landed_events(landing)
    out = written(work / "output")
    counts = {t: len(out.get(t, [])) for t in where}
    missing = sorted(t for t, n in counts.items() if n == 0)
    twice = sorted(t for t, n in counts.items() if n > 1)
    unknown = sorted(t for t in out if t not in where)
    redelivered_ids = [json.loads(line)[TRIP_ID] for line in plan["redelivered"]]
    late_ids = {t for t, names in where.items() if any(n in {f.name for f in plan["late"]} for n in names)}
    predictions = sum(pq.read_metadata(p).num_rows for p in (work / "output" / PREDICTIONS).glob("batch-*.parquet"))
    quarantine = [pq.read_table(p) for p in sorted((work / "output" / QUARANTINE).glob("batch-*.parquet"))]
    reasons = Counter(r for t in quarantine for r in t.column("reason").to_pylist())
    group_parts = [p for f in plan["group"] for p in admitted_parts(work / "checkpoint", f.name)]
    in_place_parts = admitted_parts(work / "checkpoint", plan["in_place"].name)

    print()
    print(f"landed files:             {sum(1 for p in landing.iterdir() if not p.name.startswith('.'))}")
    print(f"landed lines:             {lines:,} (the .gz decompressed)")
    print(f"distinct trip_ids landed: {len(where):,} (trips in {args.trips.name}: {table.num_rows:,})")
    print(f"predicted rows:           {predictions:,}")
    print(f"quarantined rows:         {sum(t.num_rows for t in quarantine):,} ({dict(reasons.most_common())})")
    print(f"trip_ids written 0 times: {len(missing):,}")
    print(f"trip_ids written 2+ times: {len(twice):,}")
    print(f"trip_ids written, never landed: {len(unknown):,}")
    print(f"redelivered trip_ids, times written: {[counts.get(t, 0) for t in redelivered_ids]} ({redelivered_ids})")
    print(
        f"late trip_ids (first day, landed last): {len(late_ids):,}, written once: "
        f"{sum(counts[t] == 1 for t in late_ids):,}; their pickups up to {plan['late_latest']}, "
        f"{(plan['seen_before_late'] - plan['late_latest']).days} day(s) before the latest pickup landed before "
        f"them ({plan['seen_before_late']})"
    )
    # The copies of the group, in the checkpoint's admission order: a strictly rising mtime in name order is
    # what makes Spark take them in one order, whatever run re-reads them.
    group_times = [p.stat().st_mtime_ns for p in sorted(group_parts)]
    in_order = [p.name.split("-", 1)[1] for p in sorted(group_parts)] == sorted(f.name for f in plan["group"])
    print(
        f"group of {GROUP}: {len(group_parts)} admitted copies; distinct, rising mtimes in name order: "
        f"{in_order and group_times == sorted(set(group_times))}"
    )
    in_place_size = (landing / plan["in_place"].name).stat().st_size
    print(
        f"in-place file {plan['in_place'].name}: admitted in {len(in_place_parts)} part(s) of "
        f"{[p.stat().st_size for p in in_place_parts]} bytes; {in_place_size} bytes landed"
    )
    for t in (missing + twice)[:20]:
        print(f"  {t}: landed in {where[t]}, written in {out.get(t, [])}")
    print()
    for stream in runs:
        refused = stream.lines_with("not read:")
        progress = [line for line in stream.lines_with("batch ") if line.startswith("batch ")]
        print(f"{stream.name}, exit {codes.get(stream.name)}: {len(progress)} batch progress line(s)")
        print(f"  last stderr line: {stream.last_line()}")
        for line in refused:
            print(f"  {line}")
    checks = {
        "every landed trip_id written once": not missing and not twice and not unknown,
        "redelivered events written once": all(counts.get(t) == 1 for t in redelivered_ids),
        "the redelivery was real (landed lines = distinct trip_ids + 5)": lines == len(where) + REDELIVERED,
        "every trip of the month landed": len(where) == table.num_rows,
        "run 2 and the drain exit 0": codes.get(runs[1].name) == 0 and codes.get(runs[-1].name) == 0,
        "the drain ends with backlog 0": "backlog 0 file(s)" in runs[-1].last_line(),
        "no landed file refused, no event late": not any(
            stream.lines_with("not read:") or stream.lines_with("late dropped") for stream in runs
        ),
    }
    print()
    for check, ok in checks.items():
        print(f"check: {check}: {'ok' if ok else 'FAILED'}")
    print(f"wall time: {time.monotonic() - STARTED:.0f} s")
    verdict = all(checks.values())
    print("PASS" if verdict else "FAIL")
    sys.exit(0 if verdict else 1)


if __name__ == "__main__":
    main()
