"""Downloads against a real HTTP server on 127.0.0.1: resume, skips, and every failure a user can meet."""

from __future__ import annotations

import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_duration.core.errors import NetworkError, UsageError
from taxi_duration.core.months import Month
from taxi_duration.ingest.download import download, trip_url

JAN, FEB, MAR = Month(2023, 1), Month(2023, 2), Month(2023, 3)
ZONES = b"LocationID,Borough,Zone,service_zone\n1,EWR,Newark Airport,EWR\n2,Queens,Jamaica Bay,Boro Zone\n"


class _Server(ThreadingHTTPServer):
    files: dict[str, bytes]
    honor_range: bool
    truncate: bool
    requests: list[tuple[str, str, str | None]]


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.files` by path; honours `Range: bytes=N-` unless `server.honor_range` is off."""

    server: _Server

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, *, send_body: bool) -> None:
        rng = self.headers.get("Range")
        self.server.requests.append((self.command, self.path, rng))
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        status, total = 200, len(data)
        if rng and self.server.honor_range:
            start = int(rng.removeprefix("bytes=").removesuffix("-"))
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, data = 206, data[start:]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            # truncate: promise the whole body, send half, hang up (HTTP/1.0 closes after the handler).
            self.wfile.write(data[: len(data) // 2] if self.server.truncate else data)

    def log_message(self, format: str, *args: object) -> None:  # Keep pytest output quiet.
        pass


def _parquet(n: int) -> bytes:
    table = pa.table({"PULocationID": list(range(n)), "trip_distance": [i * 0.5 for i in range(n)]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.files = {
        f"/trip-data/green_tripdata_{m}.parquet": _parquet(1000 + i * 100) for i, m in enumerate((JAN, FEB, MAR))
    }
    srv.files["/misc/taxi_zone_lookup.csv"] = ZONES
    srv.honor_range, srv.truncate, srv.requests = True, False, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _base(srv: _Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def _served(srv: _Server, m: Month) -> bytes:
    return srv.files[f"/trip-data/green_tripdata_{m}.parquet"]


def test_downloads_months_and_zones(server: _Server, tmp_path: Path) -> None:
    paths = download("green", [JAN, FEB], tmp_path, base_url=_base(server), progress=False)
    assert [p.name for p in paths] == [
        "green_tripdata_2023-01.parquet",
        "green_tripdata_2023-02.parquet",
        "taxi_zone_lookup.csv",
    ]
    assert paths[0].read_bytes() == _served(server, JAN)
    assert paths[1].read_bytes() == _served(server, FEB)
    assert paths[2].read_bytes() == ZONES
    assert not list(tmp_path.glob("*.part"))


def test_resumes_a_partial_download_with_range(server: _Server, tmp_path: Path) -> None:
    body = _served(server, JAN)
    (tmp_path / "green_tripdata_2023-01.parquet.part").write_bytes(body[: len(body) // 2])
    [path] = download("green", [JAN], tmp_path, base_url=_base(server), zones=False, progress=False)
    assert server.requests == [("GET", "/trip-data/green_tripdata_2023-01.parquet", f"bytes={len(body) // 2}-")]
    assert path.read_bytes() == body
    assert not list(tmp_path.glob("*.part"))


def test_server_ignoring_range_still_gives_the_right_file(server: _Server, tmp_path: Path) -> None:
    server.honor_range = False
    body = _served(server, JAN)
    (tmp_path / "green_tripdata_2023-01.parquet.part").write_bytes(body[: len(body) // 2])
    [path] = download("green", [JAN], tmp_path, base_url=_base(server), zones=False, progress=False)
    assert server.requests[0][2] is not None  # We asked for a range; the 200 made us start over.
    assert path.read_bytes() == body


@pytest.mark.parametrize(("extra", "requests"), [(b"", 1), (b"junk", 2)])
def test_range_not_satisfiable(server: _Server, tmp_path: Path, extra: bytes, requests: int) -> None:
    """A 416 means done when the .part has the full size; a .part longer than the file starts over."""
    body = _served(server, JAN)
    (tmp_path / "green_tripdata_2023-01.parquet.part").write_bytes(body + extra)
    [path] = download("green", [JAN], tmp_path, base_url=_base(server), zones=False, progress=False)
    assert path.read_bytes() == body
    assert len(server.requests) == requests


def test_complete_files_are_not_fetched_again(server: _Server, tmp_path: Path) -> None:
    download("green", [JAN, FEB], tmp_path, base_url=_base(server), progress=False)
    assert len(server.requests) == 3
    paths = download("green", [JAN, FEB, MAR], tmp_path, base_url=_base(server), progress=False)
    assert server.requests[3:] == [("GET", "/trip-data/green_tripdata_2023-03.parquet", None)]
    assert paths[2].read_bytes() == _served(server, MAR)


def test_unpublished_month_keeps_earlier_months(server: _Server, tmp_path: Path) -> None:
    missing = Month(2023, 4)
    url = trip_url("green", missing, _base(server))
    with pytest.raises(NetworkError, match="not published") as info:
        download("green", [JAN, FEB, missing], tmp_path, base_url=_base(server), progress=False)
    assert url in str(info.value)
    assert "\n" not in str(info.value)
    assert (tmp_path / "green_tripdata_2023-01.parquet").read_bytes() == _served(server, JAN)
    assert (tmp_path / "green_tripdata_2023-02.parquet").exists()
    assert not (tmp_path / "green_tripdata_2023-04.parquet").exists()


def test_dropped_connection_keeps_the_part_for_resume(server: _Server, tmp_path: Path) -> None:
    server.truncate = True
    with pytest.raises(NetworkError, match="green_tripdata_2023-01"):
        download("green", [JAN], tmp_path, base_url=_base(server), progress=False)
    assert not (tmp_path / "green_tripdata_2023-01.parquet").exists()
    half = len(_served(server, JAN)) // 2
    assert (tmp_path / "green_tripdata_2023-01.parquet.part").stat().st_size == half
    server.truncate = False
    download("green", [JAN], tmp_path, base_url=_base(server), progress=False)
    assert server.requests[1][2] == f"bytes={half}-"
    assert (tmp_path / "green_tripdata_2023-01.parquet").read_bytes() == _served(server, JAN)


def test_shapes_zip_is_fetched_and_checked(server: _Server, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("taxi_zones.shp", b"shape")
    server.files["/misc/taxi_zones.zip"] = buf.getvalue()
    paths = download("green", [], tmp_path, base_url=_base(server), shapes=True, progress=False)
    assert [p.name for p in paths] == ["taxi_zone_lookup.csv", "taxi_zones.zip"]
    assert paths[1].read_bytes() == buf.getvalue()


def test_connection_refused_is_a_clear_network_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # Bind then close: nothing listens on this port any more.
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(NetworkError, match=r"check your connection.*taxi-duration synth") as info:
        download("green", [JAN], tmp_path, base_url=f"http://127.0.0.1:{port}", progress=False)
    assert f"http://127.0.0.1:{port}/trip-data/green_tripdata_2023-01.parquet" in str(info.value)
    assert not list(tmp_path.iterdir())


def test_timeout_is_a_network_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # Listens but never answers: the kernel accepts, nobody replies.
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(NetworkError, match="Timeout"):
            download("green", [JAN], tmp_path, base_url=url, timeout=0.2, progress=False)


def test_corrupt_body_is_an_error_and_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    server.files["/trip-data/green_tripdata_2023-01.parquet"] = b"<html>not parquet</html>"
    with pytest.raises(NetworkError, match="corrupt"):
        download("green", [JAN], tmp_path, base_url=_base(server), progress=False)
    assert not list(tmp_path.iterdir())


def test_unknown_service_is_a_usage_error(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown service"):
        download("purple", [JAN], tmp_path, base_url=_base(server), progress=False)
    with pytest.raises(UsageError):
        download("purple", [], tmp_path, base_url=_base(server), progress=False)
    assert server.requests == []


def test_trip_url() -> None:
    assert trip_url("yellow", JAN) == "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_2023-01.parquet"
    assert trip_url("fhvhv", Month(2021, 12), "http://x/") == "http://x/trip-data/fhvhv_tripdata_2021-12.parquet"
