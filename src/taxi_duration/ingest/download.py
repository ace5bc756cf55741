"""Fetch NYC TLC monthly trip files and the zone lookup table, resumably, with a progress bar.

Each file streams into `dest/<name>.part` and is renamed to its final name only once it is complete (and,
for Parquet, readable), so a file with its final name is always whole. An existing final file is therefore
trusted and skipped without asking the server (no HEAD): this keeps re-runs offline-friendly and cheap.
An interrupted download leaves its `.part`, which the next run resumes with a `Range` request.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import httpx
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from taxi_duration.core.errors import NetworkError, UsageError
from taxi_duration.core.months import Month

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net"
SERVICES = ("yellow", "green", "fhv", "fhvhv")
ZONES_CSV = "misc/taxi_zone_lookup.csv"
ZONES_ZIP = "misc/taxi_zones.zip"

_OFFLINE_HINT = "check your connection, or use `taxi-duration synth` to work offline"
_CONTENT_RANGE = re.compile(r"bytes (?:(\d+)-\d+|\*)/(\d+)")


def trip_url(service: str, month: Month, base_url: str = TLC_BASE_URL) -> str:
    """The URL of one month of one service, e.g. `.../trip-data/green_tripdata_2023-01.parquet`.

    Raises:
        UsageError: `service` is not one of `SERVICES`.
    """
    _check_service(service)
    return f"{base_url.rstrip('/')}/trip-data/{service}_tripdata_{month}.parquet"


def download(
    service: str,
    months: list[Month],
    dest: Path,
    *,
    base_url: str = TLC_BASE_URL,
    zones: bool = True,
    shapes: bool = False,
    timeout: float = 30.0,
    progress: bool = True,
) -> list[Path]:
    """Download each month into dest (skipping files already complete), plus the zone lookup table.

    Also fetches taxi_zones.zip when `shapes`. Files are fetched one after another; a failure stops the run
    but keeps every file finished before it.

    Args:
        service: One of `SERVICES`.
        months: The months to fetch, in order.
        dest: Folder to write into (created if missing).
        base_url: Server root; tests point it at a local server.
        zones: Also fetch the zone lookup CSV.
        shapes: Also fetch the zone shapefile zip.
        timeout: Seconds to wait to connect and between reads.
        progress: Show a progress bar (only ever shown on a terminal).

    Returns:
        The final paths, months first, then the zone files.

    Raises:
        UsageError: Unknown service.
        NetworkError: Server unreachable, file missing or refused, or a download came back corrupt.
    """
    _check_service(service)  # Even with no months, so a typo never passes silently.
    jobs = [
        (trip_url(service, m, base_url), f"{service} {m} is not published (TLC publishes ~2 months late)")
        for m in months
    ]
    base = base_url.rstrip("/")
    if zones:
        jobs.append((f"{base}/{ZONES_CSV}", "the zone lookup table is missing"))
    if shapes:
        jobs.append((f"{base}/{ZONES_ZIP}", "the zone shapefile is missing"))
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    # The bar goes to stderr so stdout stays clean for the command's own output, and only on a terminal.
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    bar = Progress(*columns, TimeRemainingColumn(), console=console, disable=not (progress and console.is_terminal))
    # identity: a compressed response would make Range offsets and sizes refer to other bytes than the file's.
    client = httpx.Client(timeout=timeout, follow_redirects=True, headers={"Accept-Encoding": "identity"})
    with client, bar:
        return [_fetch(client, bar, url, dest / url.rsplit("/", 1)[-1], missing) for url, missing in jobs]


def _fetch(client: httpx.Client, bar: Progress, url: str, final: Path, missing: str) -> Path:
    """Bring `final` to complete from `url`, resuming its `.part`, then verify and rename it."""
    if final.exists():
        return final
    part = final.with_name(final.name + ".part")
    task = bar.add_task(final.name, total=None)
    try:
        # At most two passes: the second only after a 416 whose total disagrees with our .part, from scratch.
        for _ in range(2):
            offset = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            with client.stream("GET", url, headers=headers) as r:
                found = _CONTENT_RANGE.fullmatch(r.headers.get("content-range", ""))
                if r.status_code == 416:
                    if found and int(found[2]) == offset:
                        break  # The .part already holds the whole file.
                    part.unlink()
                    continue
                _raise_for_status(r, url, missing)
                if r.status_code == 206 and not (found and found[1] and int(found[1]) == offset):
                    part.unlink()  # A range we did not ask for: safer to start over than to splice.
                    continue
                # 200 means the server ignored Range (or there was none): the body is the whole file.
                resumed = r.status_code == 206
                size = int(found[2]) if resumed and found else _int(r.headers.get("content-length"))
                bar.update(task, total=size, completed=offset if resumed else 0)
                with part.open("ab" if resumed else "wb") as f:
                    for chunk in r.iter_bytes():  # Unbuffered, so a dropped connection keeps all it got.
                        f.write(chunk)
                        bar.advance(task, len(chunk))
            if size is not None and part.stat().st_size != size:
                raise NetworkError(f"{url}: download incomplete ({part.stat().st_size} of {size} bytes); run again")
            break
        else:
            raise NetworkError(f"{url}: the server keeps refusing to resume a partial download; delete {part}")
    except httpx.TransportError as exc:
        raise NetworkError(f"cannot download {url} ({type(exc).__name__}: {exc}); {_OFFLINE_HINT}") from exc
    _verify(part, url)
    os.replace(part, final)
    return final


def _check_service(service: str) -> None:
    if service not in SERVICES:
        raise UsageError(f"unknown service {service!r} (expected one of: {', '.join(SERVICES)})")


def _raise_for_status(r: httpx.Response, url: str, missing: str) -> None:
    if r.status_code == 404:
        raise NetworkError(f"{url} not found (HTTP 404): {missing}")
    if r.status_code not in (200, 206):
        raise NetworkError(f"{url}: HTTP {r.status_code} {r.reason_phrase}")


def _verify(part: Path, url: str) -> None:
    """Refuse a body that is not what its name says; the .part is deleted since resuming it cannot help."""
    try:
        if part.name.endswith(".parquet.part"):
            pq.read_metadata(part)
        elif part.name.endswith(".zip.part") and not zipfile.is_zipfile(part):
            raise ValueError("not a zip file")
    except Exception as exc:
        part.unlink()
        raise NetworkError(f"{url}: downloaded file is corrupt ({exc}); removed it, run again") from exc


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None
