"""The hand-written HTTP helpers of lesson 01, against a real uvicorn."""

from __future__ import annotations

import io
import socket

import pytest

from server.clients import http_raw


def test_build_request_is_exact() -> None:
    assert http_raw.build_request("h", "/p", version="1.0", headers={"A": "b"}) == (
        b"GET /p HTTP/1.0\r\nHost: h\r\nA: b\r\n\r\n"
    )


def test_decode_chunked_handles_extensions_and_crlf_in_data() -> None:
    raw = b"4;x=y\r\n\r\n\r\n\r\na\r\n0123456789\r\n0\r\n\r\n"
    assert http_raw.decode_chunked(raw) == b"\r\n\r\n0123456789"


def test_decode_chunked_rejects_a_missing_crlf() -> None:
    with pytest.raises(ValueError, match="not followed by CRLF"):
        http_raw.decode_chunked(b"2\r\nabXX0\r\n\r\n")


def test_websocket_accept_matches_rfc_6455() -> None:
    assert http_raw.websocket_accept("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_websocket_frame_masks_the_payload() -> None:
    frame = http_raw.websocket_frame("hi", mask=b"\x01\x02\x03\x04")
    assert frame == bytes([0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2])
    with pytest.raises(ValueError, match="125 bytes"):
        http_raw.websocket_frame("x" * 126)


def test_reads_length_and_chunked_responses_on_one_connection(serve) -> None:
    app = serve("server.apps.http_demo:app")
    with socket.create_connection(("127.0.0.1", app.port)) as sock:
        reader = sock.makefile("rb")
        sock.sendall(http_raw.build_request("127.0.0.1", "/hello"))
        first = http_raw.read_response(reader)
        sock.sendall(http_raw.build_request("127.0.0.1", "/chunks?n=2&interval=0"))
        second = http_raw.read_response(reader)
    assert (first.status, first.body) == (200, b"Hello, HTTP!\n")
    assert second.headers["transfer-encoding"] == "chunked"
    assert second.body == b"piece 1 of 2\npiece 2 of 2\n"
    assert second.raw_body.endswith(b"0\r\n\r\n")


def test_read_head_reports_a_closed_connection() -> None:
    with pytest.raises(ConnectionError, match="closed the connection"):
        http_raw.read_head(io.BytesIO(b""))
