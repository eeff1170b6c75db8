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


def test_host_carries_the_port_unless_it_is_the_default() -> None:
    """RFC 9110 §7.2: Host is the target URI's authority, port included; 80 may be left out."""
    assert b"\r\nHost: 127.0.0.1:8000\r\n" in http_raw.build_request("127.0.0.1", "/", port=8000)
    assert b"\r\nHost: example.com\r\n" in http_raw.build_request("example.com", "/", port=80)
    assert b"\r\nHost: example.com\r\n" in http_raw.build_request("example.com", "/")


def test_a_server_builds_its_own_urls_from_host(serve) -> None:
    """Without the port in Host, a redirect sends the client to port 80."""
    app = serve("server.apps.http_demo:app")
    with socket.create_connection(("127.0.0.1", app.port)) as sock:
        reader = sock.makefile("rb")
        sock.sendall(http_raw.build_request("127.0.0.1", "/hello/", port=app.port))
        redirect = http_raw.read_response(reader)
    assert redirect.status == 307
    assert redirect.headers["location"] == f"http://127.0.0.1:{app.port}/hello"


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


@pytest.mark.parametrize(
    ("size", "length_bytes"),
    [
        (125, bytes([0x80 | 125])),  # up to 125: the length fits in the second byte
        (126, bytes([0x80 | 126, 0, 126])),  # 126 says: the length is in the next 2 bytes
        (65535, bytes([0x80 | 126, 0xFF, 0xFF])),
        (65536, bytes([0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0])),  # 127: in the next 8 bytes
    ],
)
def test_websocket_frame_uses_the_extended_lengths(size: int, length_bytes: bytes) -> None:
    frame = http_raw.websocket_frame("x" * size, mask=b"\x00\x00\x00\x00")
    assert frame[0] == 0x81
    assert frame[1 : 1 + len(length_bytes)] == length_bytes
    assert frame[1 + len(length_bytes) :] == b"\x00" * 4 + b"x" * size


def test_read_websocket_frame_unmasks_and_reads_extended_lengths() -> None:
    for size in (2, 126, 70_000):
        frame = http_raw.websocket_frame("é" * (size // 2), mask=b"\x01\x02\x03\x04")
        header, payload = http_raw.read_websocket_frame(io.BytesIO(frame))
        assert header + payload != frame  # the payload came back unmasked
        assert len(header) == len(frame) - len(payload)
        assert payload.decode() == "é" * (size // 2)


def test_read_websocket_frame_reports_a_closed_connection() -> None:
    with pytest.raises(ConnectionError, match="closed the connection"):
        http_raw.read_websocket_frame(io.BytesIO(b"\x81"))


def test_the_echo_server_answers_every_length_form(serve) -> None:
    app = serve("server.apps.http_demo:app")
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
    }
    with socket.create_connection(("127.0.0.1", app.port)) as sock:
        reader = sock.makefile("rb")
        sock.sendall(http_raw.build_request("127.0.0.1", "/echo", port=app.port, headers=upgrade))
        assert http_raw.read_head(reader)[1] == 101
        for size, header_size in [(2, 2), (200, 4), (70_000, 10)]:
            sock.sendall(http_raw.websocket_frame("x" * size, mask=b"\x01\x02\x03\x04"))
            header, payload = http_raw.read_websocket_frame(reader)
            assert (len(header), payload) == (header_size, b"x" * size)


def test_one_event_is_data_a_blank_line_and_chunk_framing(serve) -> None:
    app = serve("server.apps.http_demo:app")
    with socket.create_connection(("127.0.0.1", app.port)) as sock:
        sock.sendall(http_raw.build_request("127.0.0.1", "/event?text=hi", port=app.port))
        response = http_raw.read_response(sock.makefile("rb"))
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.raw_body == b"a\r\ndata: hi\n\n\r\n0\r\n\r\n"


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
