"""The wiretap proxy against a real server: faithful records, and each fault it can inject."""

from __future__ import annotations

import socket
import time
from itertools import pairwise

import pytest

from server.clients.http_raw import build_request
from server.course.launcher import Server
from server.course.wiretap import start_wiretap


@pytest.fixture
def demo(serve) -> Server:
    return serve("server.apps.http_demo:app")


def _exchange(port: int, path: str) -> list[bytes]:
    """Send one GET with Connection: close; return every recv() until the server closes."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(build_request("127.0.0.1", path, headers={"Connection": "close"}))
        reads = []
        while piece := sock.recv(65536):
            reads.append(piece)
    return reads


def test_records_the_exact_bytes_both_ways(demo: Server) -> None:
    with start_wiretap(demo) as tap:
        received = b"".join(_exchange(tap.port, "/hello"))
        records = tap.records()
    assert records[0].direction == "open"
    assert records[-1].direction == "close"
    up = b"".join(r.data for r in records if r.direction == "up")
    down = b"".join(r.data for r in records if r.direction == "down")
    assert up == build_request("127.0.0.1", "/hello", headers={"Connection": "close"})
    assert down == received
    assert received.endswith(b"Hello, HTTP!\n")
    assert all(a.seconds <= b.seconds for a, b in pairwise(records))


def test_chunk_size_splits_the_stream_without_changing_it(demo: Server) -> None:
    direct = b"".join(_exchange(demo.port, "/hello")).split(b"\r\n\r\n", 1)[1]
    with start_wiretap(demo, chunk_size=3, delay=0.002) as tap:
        reads = _exchange(tap.port, "/hello")
    assert b"".join(reads).split(b"\r\n\r\n", 1)[1] == direct
    assert len(reads) > 20, f"expected many small reads, got {[len(r) for r in reads]}"


def test_cut_after_closes_after_exactly_that_many_bytes(demo: Server) -> None:
    with start_wiretap(demo, cut_after=50) as tap:
        assert len(b"".join(_exchange(tap.port, "/chunks?n=5&interval=0.05"))) == 50


def test_delay_holds_each_chunk_back(demo: Server) -> None:
    with start_wiretap(demo, delay=0.3) as tap:
        started = time.monotonic()
        _exchange(tap.port, "/hello")
        assert time.monotonic() - started >= 0.6  # one delay up, at least one down


def test_cut_closes_open_connections_now(demo: Server) -> None:
    with start_wiretap(demo) as tap, socket.create_connection(("127.0.0.1", tap.port)) as sock:
        sock.sendall(build_request("127.0.0.1", "/chunks?n=100&interval=0.1"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
        started = time.monotonic()
        tap.cut()
        sock.settimeout(5)
        while sock.recv(65536):
            pass
        assert time.monotonic() - started < 2, "the stream should end at the cut, not at its end"
        assert tap.records()[-1].direction == "close"
