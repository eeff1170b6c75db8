"""HTTP/1.x by hand: the bytes a client writes and reads, with nothing hidden.

Lesson 01 builds these with the learner; they are the reference implementations its
exercises fall back to. They are deliberately small and strict: enough to talk to the
course's own servers over a socket and see every byte, not a general-purpose client.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass, field

CRLF = b"\r\n"
# RFC 6455 §1.3: the server proves it understood the handshake by hashing the client's key
# with this fixed GUID.
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def build_request(
    host: str, path: str, *, version: str = "1.1", headers: dict[str, str] | None = None
) -> bytes:
    """The bytes of a GET request: request line, headers, and the blank line that ends them."""
    lines = [f"GET {path} HTTP/{version}", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""
    raw_body: bytes = b""  # the body as it was on the wire (still chunk-framed)


def read_head(reader: io.BufferedIOBase) -> tuple[str, int, str, dict[str, str]]:
    """Read a status line and headers from a binary file-like object (`sock.makefile("rb")`)."""
    status_line = reader.readline().decode("latin-1").rstrip("\r\n")
    if not status_line:
        raise ConnectionError("the server closed the connection before answering")
    version, status, reason = [*status_line.split(" ", 2), ""][:3]
    headers: dict[str, str] = {}
    while True:
        line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            return version, int(status), reason, headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()


def read_response(reader: io.BufferedIOBase) -> Response:
    """Read one whole response, framed the three ways HTTP/1.1 allows.

    `Content-Length: N` (read N bytes), `Transfer-Encoding: chunked` (read chunks until the
    zero-size one), or neither (read until the server closes: only safe without keep-alive).
    """
    _, status, reason, headers = read_head(reader)
    if headers.get("transfer-encoding", "").lower() == "chunked":
        raw = _read_chunked_raw(reader)
        return Response(status, reason, headers, decode_chunked(raw), raw)
    if "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
    else:
        body = reader.read()
    return Response(status, reason, headers, body, body)


def _read_chunked_raw(reader: io.BufferedIOBase) -> bytes:
    raw = b""
    while True:
        size_line = reader.readline()
        raw += size_line
        size = int(size_line.split(b";")[0], 16)
        raw += reader.read(size + 2)  # data + CRLF
        if size == 0:
            return raw


def decode_chunked(raw: bytes) -> bytes:
    """Join the data of a chunked body: `<hex size>\\r\\n<data>\\r\\n` ... `0\\r\\n\\r\\n`."""
    body, position = b"", 0
    while True:
        line_end = raw.index(CRLF, position)
        size = int(raw[position:line_end].split(b";")[0], 16)  # chunk extensions ignored
        start = line_end + 2
        if size == 0:
            return body
        body += raw[start : start + size]
        if raw[start + size : start + size + 2] != CRLF:
            raise ValueError(f"chunk at byte {position} is not followed by CRLF")
        position = start + size + 2


def websocket_accept(key: str) -> str:
    """The `Sec-WebSocket-Accept` a server must answer to `Sec-WebSocket-Key: key`."""
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def websocket_frame(text: str, mask: bytes = b"\x00\x00\x00\x00") -> bytes:
    """One masked text frame, as a client must send it (RFC 6455 §5.2; short payloads only)."""
    payload = text.encode("utf-8")
    if len(payload) > 125:
        raise ValueError("this teaching helper only builds frames of up to 125 bytes")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked
