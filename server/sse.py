"""Server-Sent Events: the wire format, as pure functions and one small parser.

Everything in the course that speaks SSE goes through this module: servers call
`encode` and `comment` to make bytes, clients feed bytes to a `Decoder` to get events.
It does no I/O, so the same code works over asyncio, FastAPI, Django, httpx2 or Redis.

Theory of operation
-------------------
An event stream is UTF-8 text made of lines. A line ends with CRLF, LF or CR. A line
``name: value`` sets a field, a line starting with ``:`` is a comment, and a blank line
ends the event. The rules below are the WHATWG HTML standard's, section 9.2.6
"Interpreting an event stream" (https://html.spec.whatwg.org/multipage/server-sent-events.html),
and they are what a browser's ``EventSource`` does.

The decoder runs bytes through three stages, each incremental, because the network
may cut the stream anywhere (inside a UTF-8 character, between CR and LF, mid-line):

1. bytes to text: an incremental "utf-8-sig" decoder. That is the standard's
   "UTF-8 decode": it drops one leading byte order mark, waits for the rest of a
   character cut in two, and turns invalid bytes into U+FFFD as a browser does.
2. text to lines: split on CRLF, CR and LF (never ``str.splitlines``, which also splits
   on U+2028, form feed and others that are ordinary data here). The unfinished last
   piece waits for its line ending. A CR that ends a chunk already ends the line; if
   the next chunk starts with LF, that LF is the rest of a CRLF and is skipped.
3. lines to events: each field line updates one of three buffers (data, event type,
   last event ID); a blank line dispatches an event if the data buffer is not empty.

Two values outlive an event and belong to the connection: the last event ID (sent back
as the ``Last-Event-ID`` header on reconnect) and the reconnection time from ``retry``.
The decoder keeps them as ``Decoder.last_event_id`` and ``Decoder.retry``.

The encoder is the mirror image, with one extra duty: whatever text it is given, it
must not be able to forge a second event or a field, so line breaks in data become
several ``data:`` lines and line breaks in ``event`` or ``id`` are refused.
"""

import codecs
import json
from contextlib import suppress
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "MEDIA_TYPE",
    "RESPONSE_HEADERS",
    "BufferLimitExceeded",
    "Decoder",
    "Event",
    "comment",
    "encode",
    "encode_json",
]

# What a server sends with every event stream, whatever carries the bytes: the media type
# EventSource requires, no caching, and no buffering by a proxy such as nginx (lesson 08).
# Read-only: every app shares this one mapping, so no app may change it for all the others.
MEDIA_TYPE = "text/event-stream"
RESPONSE_HEADERS = MappingProxyType({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event.

    For `encode`, ``None`` means "do not send this field". A decoded event holds what a
    browser's ``MessageEvent`` would show: ``event`` is the type (``"message"`` when the
    stream named none), ``id`` is the last event ID at dispatch (``""`` if none was ever
    set), and ``retry`` is set only if this event's own lines held a valid ``retry``.
    """

    data: str = ""
    event: str | None = None
    id: str | None = None
    retry: int | None = None  # reconnection time, in milliseconds


def _split_lines(text: str) -> list[str]:
    """Split on the three SSE line endings only. The last item is the unfinished rest."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def encode(event: Event) -> bytes:
    """Return the bytes of one complete event, ending with a blank line.

    Fields come in the order event, id, retry, data, each written ``name: value``. The
    space after the colon is always written, because a parser strips exactly one: data
    " x" goes out as ``data:  x`` and comes back as " x". Data is always sent, even
    when empty (``Event()`` encodes as ``b"data: \\n\\n"``), because a parser drops an
    event whose data buffer is empty; so every encoded event reaches the client.

    Each line of the data becomes its own ``data:`` line, so no data can forge a field
    or a second event. The parser joins the lines with LF, so CR and CRLF in data come
    back as LF. Values that cannot be sent as given raise `ValueError`: nothing is
    silently rewritten.
    """
    for name, value in (("data", event.data), ("event type", event.event), ("id", event.id)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a str, got {type(value).__name__}: {value!r}")
    lines = []
    if event.event is not None:
        if "\r" in event.event or "\n" in event.event:
            raise ValueError(f"event type must not contain CR or LF: {event.event!r}")
        lines.append(f"event: {event.event}")
    if event.id is not None:
        if "\r" in event.id or "\n" in event.id:
            raise ValueError(f"event id must not contain CR or LF: {event.id!r}")
        if "\0" in event.id:
            raise ValueError(f"event id must not contain NUL (clients ignore it): {event.id!r}")
        lines.append(f"id: {event.id}")
    if event.retry is not None:
        if isinstance(event.retry, bool) or not isinstance(event.retry, int):
            raise ValueError(f"retry must be an int (milliseconds), got {event.retry!r}")
        if event.retry < 0:
            raise ValueError(f"retry must not be negative (clients ignore it): {event.retry}")
        lines.append(f"retry: {event.retry}")
    lines.extend(f"data: {line}" for line in _split_lines(event.data))
    return ("\n".join(lines) + "\n\n").encode()


def encode_json(
    data: object, *, event: str | None = None, id: str | None = None, retry: int | None = None
) -> bytes:
    """`encode` an event whose data is `data` as compact JSON, the usual payload of an app.

    JSON never needs more than one ``data:`` line (a line break inside a string is
    written ``\\n``). Non-ASCII text stays UTF-8 (fewer bytes than ``\\uXXXX``); that
    includes U+2028, ordinary data to SSE but a line break to some line splitters.
    """
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return encode(Event(data=text, event=event, id=id, retry=retry))


def comment(text: str = "") -> bytes:
    """Return comment lines, e.g. ``comment("ping") == b": ping\\n"``, for heartbeats.

    Clients ignore comments, but the bytes keep proxies from closing an idle connection.
    Each line of `text` becomes its own ``: `` line, so text cannot forge a field.

    No blank line follows. To a spec-following client it would change nothing between
    events, but httpx-sse and the ``openai`` client dispatch an empty event on every
    blank line once the stream has sent an ``id``, so a blank-line heartbeat would
    reach them as a spurious event (see tests/test_sse_differential.py).
    """
    return "".join(f": {line}\n" for line in _split_lines(text)).encode()


class BufferLimitExceeded(ValueError):
    """The stream made the decoder hold more text than its ``max_buffer`` allows."""


class Decoder:
    """Incremental SSE parser: feed it bytes as they arrive, get complete events back.

    ``max_buffer`` bounds what the decoder holds between two `feed` calls: the unfinished
    line plus the data of the unfinished event, counted in characters. A stream that
    never ends its line or event then raises `BufferLimitExceeded` instead of using
    all memory. Use one decoder per response; after `close`, read ``last_event_id`` and
    ``retry`` to reconnect.
    """

    def __init__(self, max_buffer: int = 1 << 20, last_event_id: str = "") -> None:
        self.max_buffer = max_buffer
        # The standard's "last event ID string"; a reconnecting client starts from the last
        # one, which the new stream keeps, replaces, or resets with an empty `id`.
        self.last_event_id = last_event_id
        self.retry: int | None = None  # reconnection time in ms, if the server set one
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._closed = False
        self._line: list[str] = []  # pieces of the unfinished line
        self._line_size = 0
        self._skip_lf = False  # the last chunk ended with CR: a leading LF is its CRLF
        self._data: list[str] = []  # data lines of the unfinished event
        self._data_size = 0
        self._event_type = ""
        self._id_buffer = last_event_id  # the standard's "last event ID buffer"
        self._event_retry: int | None = None  # a retry seen since the last blank line
        self._failed: BufferLimitExceeded | None = None  # raised by the next feed or close

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse the next piece of the stream, cut anywhere; return the completed events."""
        if self._closed:
            raise ValueError("feed() after close(): use a new Decoder for a new stream")
        if self._failed is not None:
            raise self._failed
        text = self._utf8.decode(chunk)
        if not text:  # an empty chunk, or only part of a character or of a BOM
            return []
        if self._skip_lf and text[0] == "\n":
            text = text[1:]
        self._skip_lf = text[-1:] == "\r"
        *lines, rest = _split_lines(text)
        if lines:
            lines[0] = "".join(self._line) + lines[0]
            self._line, self._line_size = [rest], len(rest)
            events = self._process(lines)
        else:
            self._line.append(rest)
            self._line_size += len(rest)
            events = []
        held = self._line_size + self._data_size
        if held > self.max_buffer:
            error = BufferLimitExceeded(
                f"SSE decoder holds {held} characters of an unfinished line or event, "
                f"more than max_buffer={self.max_buffer}; if the stream really sends "
                f"lines or events this big, raise it: Decoder(max_buffer=...)"
            )
            self._line, self._data = [], []  # let the oversized text go now
            self._line_size = self._data_size = 0
            if not events:
                raise error
            self._failed = error  # complete events are delivered; the next call fails
        return events

    def close(self) -> list[Event]:
        """End of stream. Always returns ``[]``: by the standard an unfinished event, or
        an unfinished line, is discarded, never dispatched. (A CR is acted on when it
        arrives, so no line ending is ever left waiting for the next chunk.) Raises
        `BufferLimitExceeded` if the last `feed` overflowed after delivering events."""
        if self._failed is not None:
            self._closed = True
            raise self._failed
        self._utf8.decode(b"", final=True)  # a cut character belongs to the discarded line
        self._closed = True
        self._line, self._data = [], []
        self._line_size = self._data_size = 0
        return []

    def _process(self, lines: list[str]) -> list[Event]:
        """Apply the standard's per-line rules to complete lines."""
        events = []
        data = self._data
        data_size = self._data_size
        for line in lines:
            if not line:  # blank line: dispatch
                self.last_event_id = self._id_buffer
                if data:
                    event_type = self._event_type or "message"
                    events.append(
                        Event("\n".join(data), event_type, self._id_buffer, self._event_retry)
                    )
                    data = []
                data_size = 0
                self._event_type = ""
                self._event_retry = None
                continue
            # "data" (no colon) and "data:" both give an empty value; ":..." gives name "".
            name, _, value = line.partition(":")
            if value[:1] == " ":  # exactly one space is stripped
                value = value[1:]
            if name == "data":
                data.append(value)
                data_size += len(value) + 1
            elif name == "event":
                self._event_type = value
            elif name == "id":
                if "\0" not in value:
                    self._id_buffer = value
            elif name == "retry" and value.isascii() and value.isdigit():
                # Only ASCII digits: int() alone would accept "-5", " 5", "+5", "1_0", "５".
                # A value over Python's int digit limit (4300 by default) is ignored too.
                with suppress(ValueError):
                    self.retry = self._event_retry = int(value)
            # Anything else is a comment (name "") or an unknown field: ignored.
        self._data = data
        self._data_size = data_size
        return events
