"""The wiretap proxy against a real server: faithful records, and each fault it can inject."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise

import pytest
from conftest import wait_until

from server.clients.http_raw import build_request
from server.course.launcher import Server
from server.course.wiretap import Record, Wiretap, start_wiretap

DEADLINE = 10.0  # seconds: generous, for a loaded machine; the behaviour takes far less


@pytest.fixture
def demo(serve) -> Server:  # type: ignore[no-untyped-def]
    return serve("server.apps.http_demo:app")


def _exchange(port: int, path: str) -> list[bytes]:
    """Send one GET with Connection: close; return every recv() until the server closes."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(DEADLINE)
        sock.sendall(build_request("127.0.0.1", path, headers={"Connection": "close"}))
        reads = []
        while piece := sock.recv(65536):
            reads.append(piece)
    return reads


def _wait_closed(tap: Wiretap) -> list[Record]:
    """The records, once the wiretap has closed every connection it recorded.

    A connection closes when both sides have ended theirs, so the client having read the
    server's end is not enough: the wiretap must also have seen the client's.
    """

    def all_closed() -> bool:
        records = tap.records()
        closed = {r.connection for r in records if r.direction == "close"}
        return bool(records) and closed == {r.connection for r in records}

    wait_until(all_closed, "the wiretap to close every connection it recorded", DEADLINE)
    return tap.records()


def test_records_the_exact_bytes_both_ways(demo: Server) -> None:
    with start_wiretap(demo) as tap:
        received = b"".join(_exchange(tap.port, "/hello"))
        records = _wait_closed(tap)
    assert records[0].direction == "open"
    assert [r.direction for r in records[-3:]] == ["down-eof", "up-eof", "close"]
    up = b"".join(r.data for r in records if r.direction == "up")
    down = b"".join(r.data for r in records if r.direction == "down")
    assert up == build_request("127.0.0.1", "/hello", headers={"Connection": "close"})
    assert down == received
    assert received.endswith(b"Hello, HTTP!\n")
    assert all(a.seconds <= b.seconds for a, b in pairwise(records))


def test_chunk_size_splits_the_stream_without_changing_it(demo: Server) -> None:
    direct = b"".join(_exchange(demo.port, "/hello")).split(b"\r\n\r\n", 1)[1]
    with start_wiretap(demo, chunk_size=3, delay=0.01) as tap:
        reads = _exchange(tap.port, "/hello")
    assert b"".join(reads).split(b"\r\n\r\n", 1)[1] == direct
    # About 50 pieces, 10 ms apart: even a client slow enough to find several waiting at
    # once reads far more than 10 times.
    assert len(reads) > 10, f"expected many small reads, got {[len(r) for r in reads]}"


def test_cut_after_closes_after_exactly_that_many_bytes(demo: Server) -> None:
    with start_wiretap(demo, cut_after=50) as tap:
        assert len(b"".join(_exchange(tap.port, "/chunks?n=5&interval=0.05"))) == 50


def test_delay_holds_each_chunk_back(demo: Server) -> None:
    with start_wiretap(demo, delay=0.3) as tap:
        started = time.monotonic()
        _exchange(tap.port, "/hello")
        assert time.monotonic() - started >= 0.6  # one delay up, at least one down


def test_cut_closes_open_connections_now(demo: Server) -> None:
    # A stream of 100 s, cut after its first read: it must end long before its end.
    with start_wiretap(demo) as tap, socket.create_connection(("127.0.0.1", tap.port)) as sock:
        sock.settimeout(DEADLINE)
        sock.sendall(build_request("127.0.0.1", "/chunks?n=1000&interval=0.1"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        tap.cut()

        def ended() -> bool:  # reads what has come; b"" once the wiretap has closed it
            return sock.recv(65536) == b""

        wait_until(ended, "the stream to end at the cut, not at its end", DEADLINE)
        assert tap.records()[-1].direction == "close"


# --- a half-close: the client is done sending, not done listening -----------------------------

HALF_CLOSE_BODY = b"the whole answer, after the client's EOF\n" * 20


class _Answer(BaseHTTPRequestHandler):
    """The standard library's HTTP/1.0 server, answering any GET with HALF_CLOSE_BODY."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(HALF_CLOSE_BODY)))
        self.end_headers()
        self.wfile.write(HALF_CLOSE_BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean


@pytest.fixture
def http10() -> Iterator[tuple[str, int]]:
    """An upstream that, unlike uvicorn, still answers a client that has half-closed.

    uvicorn (0.54) takes a half-close for a disconnect and drops the response itself
    (uvicorn#1264), so it cannot show whether the wiretap forwards one. Port 0: the kernel
    picks a free port, and the socket listens before the fixture returns.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_half_closed_client_still_gets_the_whole_response(http10: tuple[str, int]) -> None:
    request = build_request("127.0.0.1", "/", version="1.0")
    with start_wiretap(http10) as tap, socket.create_connection(("127.0.0.1", tap.port)) as sock:
        sock.settimeout(DEADLINE)
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)  # "that was my whole request", as `nc -N` does
        received = b""
        while piece := sock.recv(65536):
            received += piece
        records = _wait_closed(tap)
    assert received.startswith(b"HTTP/1.0 200 OK\r\n")
    assert received.endswith(HALF_CLOSE_BODY)
    # The records tell the story: the request, the client's end of file passed on to the
    # server, the whole answer, the server's end of file, and only then the close. (The app
    # may start its answer before the tap has passed the client's end of file on: HTTP/1.0
    # needs only the request's head, so those two are not ordered.)
    directions = [r.direction for r in records]
    assert directions[0] == "open" and directions[1] == "up"
    assert "up-eof" in directions
    assert directions[-2:] == ["down-eof", "close"]
    assert b"".join(r.data for r in records if r.direction == "up") == request
    assert b"".join(r.data for r in records if r.direction == "down") == received
