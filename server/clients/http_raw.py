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
from typing import NamedTuple

CRLF = b"\r\n"
HTTP_PORT = 80  # http's default port: the only one Host may leave out
MASK_BIT = 0x80  # in a WebSocket frame's second byte: the payload is masked (client to server)
# RFC 6455 §1.3: the server proves it understood the handshake by hashing the client's key
# with this fixed GUID.
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def build_request(
    host: str,
    path: str,
    *,
    port: int = HTTP_PORT,
    version: str = "1.1",
    headers: dict[str, str] | None = None,
) -> bytes:
    """The bytes of a GET request: request line, headers, and the blank line that ends them.

    `Host` is the authority of the URL asked for, port included (RFC 9110 §7.2), except
    http's default port 80, which may be left out. A server builds its own URLs from it
    (redirects, links): `Host: 127.0.0.1` for a server on port 8000 sends clients to port 80.
    """
    authority = host if port == HTTP_PORT else f"{host}:{port}"
    lines = [f"GET {path} HTTP/{version}", f"Host: {authority}"]
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
    """One masked text frame, as a client must send it (RFC 6455 §5.2).

    Byte 0 is `0x81`: FIN (the last frame of the message) and opcode 1 (text). Byte 1 is the
    MASK bit and a 7-bit length: the payload's length if it is at most 125; 126 if the length
    follows in the next 2 bytes; 127 if it follows in the next 8 (big-endian). Then the 4-byte
    mask, and the payload XOR-ed with it. A header is 2, 4 or 10 bytes, plus the mask.
    """
    payload = text.encode("utf-8")
    size = len(payload)
    if size <= 125:
        length = bytes([MASK_BIT | size])
    elif size <= 0xFFFF:
        length = bytes([MASK_BIT | 126]) + size.to_bytes(2, "big")
    else:
        length = bytes([MASK_BIT | 127]) + size.to_bytes(8, "big")
    return bytes([0x81]) + length + mask + _xor(payload, mask)


class Frame(NamedTuple):
    header: bytes  # as on the wire: the first two bytes, any extended length, any mask
    payload: bytes  # unmasked


def read_websocket_frame(reader: io.BufferedIOBase) -> Frame:
    """Read one frame, a server's (unmasked) or a client's (masked), from a binary file."""
    header = _read_exactly(reader, 2)
    size = header[1] & 0x7F
    if size > 125:
        extended = _read_exactly(reader, 2 if size == 126 else 8)
        header += extended
        size = int.from_bytes(extended, "big")
    mask = b"\x00\x00\x00\x00"
    if header[1] & MASK_BIT:
        mask = _read_exactly(reader, 4)
        header += mask
    return Frame(header, _xor(_read_exactly(reader, size), mask))


def _xor(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _read_exactly(reader: io.BufferedIOBase, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise ConnectionError("the other side closed the connection in the middle of a frame")
    return data
