"""Where the bytes of a stream go: the messages themselves, and what carries them.

Seed 003 says of SSE that its "packets are small because there are no headers unlike the
websocket". Neither protocol sends HTTP headers per message; both frame each message, in
different ways, and this module counts how many bytes each spends on it, from the exact bytes
one direction of a connection carried (a wiretap's records, `server.course.wiretap`):

- **WebSocket** (RFC 6455 §5.2): after the handshake's head, frames. A frame's header is 2
  bytes for up to 125 bytes of payload, 4 up to 65,535, 10 beyond, plus a 4-byte mask on every
  frame a client sends. With `permessage-deflate` (RFC 7692) the payload is compressed (the
  RSV1 bit says so). Ping, pong and close frames carry no message: counted as `control`.
- **SSE over HTTP/1.1**: after the response head, chunks (`<hex size>\\r\\n ... \\r\\n`), each
  holding one event: `data: ` before the payload, line ends, and an `id:` line if there is
  one. Comments (heartbeats) and the final empty chunk are `control`.

`payload` is what the application sent (the JSON of each message, compressed if it was);
`framing` is everything else that carried it, ids included. Frames are parsed with lesson
01's `server.clients.http_raw`; events with `server.sse.Decoder`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

from server.clients.http_raw import read_websocket_frame
from server.sse import Decoder

HEAD_END = b"\r\n\r\n"
CONTROL_OPCODES = (0x8, 0x9, 0xA)  # close, ping, pong


@dataclass(frozen=True)
class WireBytes:
    """The bytes one direction of a connection carried, by what they were for."""

    head: int  # the HTTP head: a request, a 101 or a 200 response
    # Per message (WebSocket message or SSE event), in order: (payload, framing). Payload is
    # the message's own bytes, as sent (compressed, with permessage-deflate); framing is what
    # carried it: frame headers and masks; `data: `, ids, line ends and chunk sizes.
    sizes: tuple[tuple[int, int], ...]
    control: int  # bytes that carried no message: ping/pong/close frames, comments, last chunk

    @property
    def messages(self) -> int:
        return len(self.sizes)

    @property
    def payload(self) -> int:
        return sum(payload for payload, _ in self.sizes)

    @property
    def framing(self) -> int:
        return sum(framing for _, framing in self.sizes)

    @property
    def total(self) -> int:
        return self.head + self.payload + self.framing + self.control

    @property
    def framing_per_message(self) -> float:
        return self.framing / self.messages if self.messages else 0.0

    @property
    def per_message(self) -> float:
        """Bytes on the wire per message, once the connection is open."""
        return (self.payload + self.framing) / self.messages if self.messages else 0.0

    def only(self, keep: Iterable[bool]) -> WireBytes:
        """The same count with only the messages whose flag in `keep` is true, in order (say,
        `m["type"] == "token"` for each message the client received)."""
        kept = tuple(size for size, flag in zip(self.sizes, keep, strict=True) if flag)
        return WireBytes(self.head, kept, self.control)


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """(the HTTP head with its blank line, what follows); ValueError if the head is unfinished."""
    end = data.find(HEAD_END)
    if end < 0:
        raise ValueError("no complete HTTP head in these bytes")
    return data[: end + len(HEAD_END)], data[end + len(HEAD_END) :]


def websocket_bytes(data: bytes) -> WireBytes:
    """Count a WebSocket direction: the handshake's head, then frames (an unfinished last
    frame, from a connection cut mid-frame, is left out)."""
    head, rest = split_head(data)
    reader = io.BytesIO(rest)
    sizes: list[tuple[int, int]] = []
    control = payload = framing = 0
    while reader.tell() < len(rest):
        try:
            frame = read_websocket_frame(reader)
        except ConnectionError:
            break
        if frame.header[0] & 0x0F in CONTROL_OPCODES:
            control += len(frame.header) + len(frame.payload)
            continue
        payload += len(frame.payload)
        framing += len(frame.header)
        if frame.header[0] >> 7:  # FIN: the last frame of a message
            sizes.append((payload, framing))
            payload = framing = 0
    return WireBytes(len(head), tuple(sizes), control)


def sse_bytes(data: bytes) -> WireBytes:
    """Count an SSE response: the head, then a chunked body of events (an unfinished last
    chunk is left out)."""
    head, rest = split_head(data)
    decoder = Decoder()
    sizes: list[tuple[int, int]] = []
    control = position = 0
    while (line_end := rest.find(b"\r\n", position)) >= 0:
        size = int(rest[position:line_end].split(b";")[0], 16)
        start = line_end + 2
        if start + size + 2 > len(rest):
            break
        chunk_bytes = start + size + 2 - position
        events = decoder.feed(rest[start : start + size])
        position = start + size + 2
        if not events:  # a comment (heartbeat), or the last, empty chunk
            control += chunk_bytes
            continue
        for event in events:  # one per chunk from the course's servers
            data_bytes = len(event.data.encode())
            sizes.append((data_bytes, chunk_bytes // len(events) - data_bytes))
    return WireBytes(len(head), tuple(sizes), control)
