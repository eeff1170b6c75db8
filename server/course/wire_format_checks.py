"""Lesson 03's exercise checks: an encoder and the field step of a decoder, held to the standard.

`test_encode_event(fn)` decodes what the learner's ``encode_event`` writes with
`server.sse.Decoder`, so it checks the rules and not one spelling (``b"data: hi\\n\\n"`` and
``b"data:hi\\r\\n\\r\\n"`` both pass): one ``data:`` line per line of data, whichever of LF,
CRLF or CR ends it; an empty line after each event; a ``ValueError`` for a line break in
``event`` or ``id``, which no spelling can send.

`test_parse_block(fn)` hands the learner's ``parse_block`` the lines of one block each and
compares the `Event` it returns with what the WHATWG standard dispatches, the standard's own
examples among them.

Each assertion says which rule failed, so a learner reads the message, not this module. The
references, `reference_encode_event` and `reference_parse_block`, are `server.sse` behind the
exercise's signature: later cells use them when an exercise is not solved.
"""

from __future__ import annotations

from collections.abc import Callable

from server.sse import Decoder, Event, encode

__all__ = [
    "reference_encode_event",
    "reference_parse_block",
    "test_encode_event",
    "test_parse_block",
]

Encoder = Callable[..., bytes]

# (data, what a decoder must read back, the rule it tests)
DATA_RULES = [
    ("hi", "hi", "the data"),
    ("안녕하세요", "안녕하세요", "the stream is UTF-8"),
    ("a\nb\r\nc\rd", "a\nb\nc\nd", "one data line per line: LF, CRLF and CR all end a line"),
    ("", "", "empty data is still an event: write a data line"),
    ("two\n\nparagraphs", "two\n\nparagraphs", "an empty line of data is an empty data line"),
    (" indented", " indented", "a parser strips one space after `data:`: keep the data's own"),
]

# (the lines of one block, the event the standard dispatches for it, or None)
BLOCKS: list[tuple[list[str], Event | None]] = [
    (["data: YHOO", "data: +2", "data: 10"], Event("YHOO\n+2\n10", "message", "")),
    (["data:test"], Event("test", "message", "")),
    (["data:  two spaces"], Event(" two spaces", "message", "")),
    (["data: a: b"], Event("a: b", "message", "")),
    (["event: update", "id: 7", "retry: 3000", "data: x"], Event("x", "update", "7", 3000)),
    ([": comment", "data: x", "foo: bar", "Data: y", "event"], Event("x", "message", "")),
    (["data"], Event("", "message", "")),
    (["data", "data"], Event("\n", "message", "")),
    (["retry: -5", "retry: 1s", "retry: ５", "data: x"], Event("x", "message", "", None)),
    (["event: update"], None),
    (["id: 7", "retry: 5"], None),
    ([": ping"], None),
]


def _decode(raw: bytes) -> list[Event]:
    decoder = Decoder()
    return decoder.feed(raw) + decoder.close()


def test_encode_event(fn: Encoder) -> None:
    """Assert `fn(data, event=None, id=None)` writes one event a decoder reads back exactly."""

    def decoded(*args: str, **kwargs: str) -> Event:
        raw = fn(*args, **kwargs)
        assert isinstance(raw, bytes), f"return bytes, not {type(raw).__name__}"
        events = _decode(raw)
        assert len(events) == 1, f"{raw!r} should decode to exactly one event, got {events}"
        return events[0]

    for data, want, rule in DATA_RULES:
        got = decoded(data)
        assert got.data == want, f"{rule}: encode_event({data!r}) decoded to {got.data!r}"
        assert (got.event, got.id) == ("message", ""), f"no event or id given, got {got}"
    got = decoded("x", event="update", id="7")
    assert got == Event("x", "update", "7"), f"with event and id, a decoder read {got}"
    both = _decode(fn("a") + fn("b"))
    assert [e.data for e in both] == ["a", "b"], f"each event must end with an empty line: {both}"
    for field in ("event", "id"):
        for bad in ("a\nb", "a\rb", "a\r\nb"):
            try:
                fn("x", **{field: bad})
            except ValueError:
                continue
            raise AssertionError(f"{field}={bad!r} should raise ValueError")


def test_parse_block(fn: Callable[[list[str]], Event | None]) -> None:
    """Assert `fn(lines)` returns the event each block dispatches, or None."""
    for lines, want in BLOCKS:
        got = fn(lines)
        assert got == want, f"parse_block({lines!r}) gave {got!r}, expected {want!r}"


def reference_encode_event(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """The reference: server.sse.encode, which does this and a little more."""
    return encode(Event(data, event, id))


def reference_parse_block(lines: list[str]) -> Event | None:
    """The reference: a new server.sse.Decoder fed the block and an empty line."""
    events = Decoder().feed("\n".join([*lines, "", ""]).encode())
    return events[0] if events else None
