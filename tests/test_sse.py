"""Tests for server/sse.py, named after the rules of the WHATWG HTML standard, §9.2.5-9.2.6.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
"""

import json
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.sse import (
    RESPONSE_HEADERS,
    BufferLimitExceeded,
    Decoder,
    Event,
    comment,
    encode,
    encode_json,
)

BOM = "\ufeff".encode()


def decode(*chunks: bytes) -> list[Event]:
    """Feed the chunks to a fresh decoder, close it, return every event."""
    decoder = Decoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


def decode_with_state(chunks: list[bytes]) -> tuple[list[Event], str, int | None]:
    decoder = Decoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    events += decoder.close()
    return events, decoder.last_event_id, decoder.retry


def message(data: str, event: str = "message", id: str = "", retry: int | None = None) -> Event:
    """An event as the decoder reports it (type "message", id "" unless set)."""
    return Event(data, event, id, retry)


# The standard's own examples


def test_spec_example_stock_ticker_yhoo() -> None:
    assert decode(b"data: YHOO\ndata: +2\ndata: 10\n\n") == [message("YHOO\n+2\n10")]


def test_spec_example_comment_then_three_events() -> None:
    stream = (
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n\n"
    )
    assert decode(stream) == [
        message("first event", id="1"),
        message("second event", id=""),  # a bare "id" resets the last event ID
        message(" third event", id=""),  # only one space after the colon is stripped
    ]


def test_spec_example_last_event_needs_its_blank_line() -> None:
    stream = b"data: first event\nid: 1\n\ndata:  third event\n"
    assert decode(stream) == [message("first event", id="1")]


def test_spec_example_data_lines_without_value() -> None:
    """A bare "data" is an empty data line: events "" and "\\n"; the last is unfinished."""
    assert decode(b"data\n\ndata\ndata\n\ndata:") == [message(""), message("\n")]


def test_spec_example_space_after_colon_is_optional() -> None:
    assert decode(b"data:test\n\ndata: test\n\n") == [message("test"), message("test")]


# Byte order mark


def test_bom_at_start_is_dropped() -> None:
    assert decode(BOM + b"data: x\n\n") == [message("x")]


def test_bom_split_across_chunks_is_dropped() -> None:
    assert decode(BOM[:1], BOM[1:2], BOM[2:] + b"data: x\n\n") == [message("x")]


def test_only_one_bom_is_dropped() -> None:
    """A second BOM is part of the first line, making the field name "\\ufeffdata"."""
    assert decode(BOM + BOM + b"data: x\n\ndata: y\n\n") == [message("y")]


def test_bom_later_in_the_stream_is_kept() -> None:
    assert decode(b"data: a\n\n", BOM + b"data: b\n\ndata: \xef\xbb\xbfc\n\n") == [
        message("a"),
        message("\ufeffc"),
    ]


# Line endings


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"], ids=["CRLF", "LF", "CR"])
def test_cr_lf_and_crlf_all_end_lines(eol: bytes) -> None:
    stream = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol
    assert decode(stream) == [message("a\nb", event="e")]


def test_mixed_line_endings() -> None:
    assert decode(b"data: a\rdata: b\ndata: c\r\n\ndata: d\r\r") == [
        message("a\nb\nc"),
        message("d"),
    ]


def test_crlf_split_between_chunks_is_one_line_ending() -> None:
    """Were the LF a second line ending, it would be a blank line and dispatch "a" alone."""
    assert decode(b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n") == [message("a\nb")]


def test_cr_at_end_of_chunk_dispatches_at_once() -> None:
    """A CR ends its line: the event must not wait for the next chunk to arrive."""
    decoder = Decoder()
    assert decoder.feed(b"data: a\r\r") == [message("a")]
    assert decoder.feed(b"\ndata: b\n\n") == [message("b")]  # the LF completes CRLF


def test_empty_chunk_changes_nothing() -> None:
    assert decode(b"data: a\r", b"", b"\n", b"", b"\n") == [message("a")]


def test_unicode_line_separators_are_data() -> None:
    """Only CR and LF end lines; str.splitlines() would also split on all of these."""
    text = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg"
    assert decode(f"data: {text}\n\n".encode()) == [message(text)]


# Fields


def test_one_space_after_colon_is_stripped_no_more() -> None:
    assert decode(b"data:  two\n\ndata:\tx\n\ndata:x \n\n") == [
        message(" two"),
        message("\tx"),
        message("x "),
    ]


def test_colon_in_value_is_kept() -> None:
    assert decode(b"data: a: b:c\n\n") == [message("a: b:c")]


def test_line_without_colon_is_field_with_empty_value() -> None:
    assert decode(b"id: 1\nevent: e\ndata: a\n\nid\nevent\ndata\n\n") == [
        message("a", event="e", id="1"),
        message("", id=""),
    ]


def test_line_starting_with_colon_is_comment() -> None:
    assert decode(b":data: x\n:\n: id: 5\ndata: y\n\n") == [message("y")]


def test_unknown_fields_are_ignored() -> None:
    """Field names are exact: "Data", "data " and "dat" are unknown."""
    assert decode(b"Data: x\ndata : x\ndat: x\nfoo: bar\n\n") == []


def test_nul_in_data_is_kept() -> None:
    assert decode(b"data: a\0b\n\n") == [message("a\0b")]


# Dispatch


def test_empty_data_buffer_dispatches_nothing_and_resets_event_type() -> None:
    assert decode(b"event: e\n\ndata: x\n\n") == [message("x")]


def test_event_type_applies_to_one_event() -> None:
    assert decode(b"event: e\ndata: x\n\ndata: y\n\n") == [message("x", "e"), message("y")]


def test_empty_event_field_means_message() -> None:
    assert decode(b"event:\ndata: x\n\nevent: \ndata: y\n\n") == [message("x"), message("y")]


def test_data_buffer_loses_only_its_last_lf() -> None:
    assert decode(b"data: a\ndata\ndata\n\n") == [message("a\n\n")]


def test_extra_blank_lines_dispatch_nothing() -> None:
    assert decode(b"\n\n\nid: 1\ndata: x\n\n\n\n\n") == [message("x", id="1")]


# Last event ID


def test_id_persists_across_events() -> None:
    decoder = Decoder()
    assert decoder.feed(b"id: 1\ndata: a\n\ndata: b\n\n") == [
        message("a", id="1"),
        message("b", id="1"),
    ]
    assert decoder.last_event_id == "1"


def test_empty_id_resets_last_event_id() -> None:
    decoder = Decoder()
    assert decoder.feed(b"id: 1\ndata: a\n\nid:\ndata: b\n\n") == [
        message("a", id="1"),
        message("b", id=""),
    ]
    assert decoder.last_event_id == ""


def test_id_with_nul_is_ignored() -> None:
    assert decode(b"id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n") == [
        message("a", id="1"),
        message("b", id="1"),
    ]


def test_id_only_block_sets_last_event_id_without_event() -> None:
    """Dispatch first sets the last event ID string, then stops if there is no data."""
    decoder = Decoder()
    assert decoder.feed(b"id: 7\n\n") == []
    assert decoder.last_event_id == "7"


def test_id_of_unfinished_event_is_not_the_last_event_id() -> None:
    """The last event ID changes at a blank line, so a client never skips a lost event."""
    decoder = Decoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    assert decoder.close() == []
    assert decoder.last_event_id == "1"


# Retry


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("5", 5), ("007", 7), ("3000", 3000)])
def test_retry_of_ascii_digits_is_set(value: str, expected: int) -> None:
    decoder = Decoder()
    assert decoder.feed(f"retry: {value}\ndata: x\n\n".encode()) == [message("x", retry=expected)]
    assert decoder.retry == expected


@pytest.mark.parametrize(
    "value",
    [
        "+5",
        "-5",
        "5 ",
        " 5",
        "",
        "５",
        "1_000",
        "1.5",
        "5ms",
        "0x10",
    ],
)
def test_retry_not_all_ascii_digits_is_ignored(value: str) -> None:
    decoder = Decoder()
    assert decoder.feed(f"retry: 10\n\nretry: {value}\ndata: x\n\n".encode()) == [message("x")]
    assert decoder.retry == 10


def test_retry_too_long_for_python_int_is_ignored() -> None:
    """int() refuses over 4300 digits by default; a stream must not crash the client."""
    decoder = Decoder()
    assert decoder.feed(b"retry: " + b"9" * 5000 + b"\ndata: x\n\n") == [message("x")]
    assert decoder.retry is None


def test_retry_is_connection_state_not_event_state() -> None:
    """Only the event whose lines set retry carries it; the decoder keeps it."""
    decoder = Decoder()
    assert decoder.feed(b"retry: 1000\ndata: a\n\ndata: b\n\nretry: 5\n\n") == [
        message("a", retry=1000),
        message("b"),
    ]
    assert decoder.retry == 5


# Decoding UTF-8


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert decode(b"data: a\xffb\xc3(\xf0\x80\x80\n\n") == [
        message("a\ufffdb\ufffd(\ufffd\ufffd\ufffd")
    ]


def test_utf8_character_split_across_chunks() -> None:
    assert decode(b"data: \xed\x95", b"\x9c\xf0\x9f\x98", b"\x80\n\n") == [message("한😀")]


def test_character_cut_at_end_of_stream_is_discarded() -> None:
    assert decode(b"data: a\n\ndata: \xed\x95") == [message("a")]


# End of stream


def test_close_discards_unfinished_event_and_line() -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: a\n\ndata: b\n\ndata: c\ndata: d") == [message("a"), message("b")]
    assert decoder.close() == []


def test_feed_after_close_raises() -> None:
    decoder = Decoder()
    decoder.close()
    with pytest.raises(ValueError, match="new Decoder"):
        decoder.feed(b"data: x\n\n")


# Buffer limit


def test_unfinished_line_over_limit_raises() -> None:
    decoder = Decoder(max_buffer=100)
    decoder.feed(b"data: " + b"x" * 90)
    with pytest.raises(
        BufferLimitExceeded, match=r"holds 106 .*max_buffer=100.*Decoder\(max_buffer"
    ):
        decoder.feed(b"x" * 10)


def test_unfinished_event_over_limit_raises() -> None:
    decoder = Decoder(max_buffer=100)
    decoder.feed(b"data: " + b"x" * 60 + b"\n")
    with pytest.raises(BufferLimitExceeded):
        decoder.feed(b"data: " + b"x" * 60 + b"\n")


def test_events_completed_before_the_overflow_are_delivered_then_it_fails() -> None:
    """A chunk that completes events and then overflows: the events first, the error next."""
    decoder = Decoder(max_buffer=100)
    chunk = b"data: one\n\ndata: two\n\ndata: " + b"x" * 200
    assert decoder.feed(chunk) == [message("one"), message("two")]
    with pytest.raises(BufferLimitExceeded, match="max_buffer=100"):
        decoder.feed(b"\n\n")  # the oversized event is never delivered


def test_an_overflow_after_delivered_events_is_reported_by_close_too() -> None:
    decoder = Decoder(max_buffer=10)
    assert decoder.feed(b"data: a\n\ndata: " + b"x" * 20) == [message("a")]
    with pytest.raises(BufferLimitExceeded):
        decoder.close()


def test_buffer_limit_error_is_a_value_error() -> None:
    assert issubclass(BufferLimitExceeded, ValueError)


def test_buffer_limit_counts_only_what_is_held_between_feeds() -> None:
    """A complete event inside one chunk is not held, so the chunk size is the caller's."""
    decoder = Decoder(max_buffer=100)
    assert decoder.feed(b"data: " + b"x" * 500 + b"\n\n") == [message("x" * 500)]
    assert decoder.feed(b"data: " + b"x" * 94) == []  # exactly 100 held is allowed


# Every fixture, cut everywhere

FIXTURES = {
    "yhoo": b"data: YHOO\ndata: +2\ndata: 10\n\n",
    "three_events": b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
    b"data:  third event\n\n",
    "empty_data": b"data\n\ndata\ndata\n\ndata:",
    "crlf": b"event: e\r\nid: 1\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
    "cr": b"data: a\rretry: 5\rdata: b\r\rid: 2\r\r",
    "mixed": b"data: a\r\n\rdata: b\n\r\ndata: c\r\r\n",
    "bom_utf8": BOM + "data: 한국어 😀\nevent: ☃\n\n".encode(),
    "invalid_utf8": b"data: \xff\xc3\n\ndata: \xe2\x82\n\n",
    "fields": b"id: 1\0\nretry: -5\nretry: 12\nfoo: bar\n:c\ndata\nid:\n\nid: x\n\n",
    "unfinished": b"data: a\n\ndata: b\nid: 9\r",
}


@pytest.mark.parametrize("name", FIXTURES)
def test_every_two_piece_split_gives_same_result(name: str) -> None:
    stream = FIXTURES[name]
    whole = decode_with_state([stream])
    for i in range(len(stream) + 1):
        assert decode_with_state([stream[:i], stream[i:]]) == whole, f"split at {i}"


@pytest.mark.parametrize("name", FIXTURES)
def test_byte_by_byte_gives_same_result(name: str) -> None:
    stream = FIXTURES[name]
    pieces = [stream[i : i + 1] for i in range(len(stream))]
    assert decode_with_state(pieces) == decode_with_state([stream])


def test_fixtures_decode_as_expected() -> None:
    """Pins down the fixtures above, so the split tests compare against known results."""
    assert decode_with_state([FIXTURES["cr"]]) == ([message("a\nb", retry=5)], "2", 5)
    assert decode_with_state([FIXTURES["mixed"]]) == (
        [message("a"), message("b"), message("c")],
        "",
        None,
    )
    assert decode_with_state([FIXTURES["fields"]]) == ([message("", retry=12)], "x", 12)
    assert decode_with_state([FIXTURES["unfinished"]]) == ([message("a")], "", None)


# Encoder


def test_event_is_immutable() -> None:
    with pytest.raises(FrozenInstanceError):
        Event("x").data = "y"  # type: ignore[misc]


def test_encode_writes_event_id_retry_then_data() -> None:
    assert encode(Event("a\nb", event="e", id="1", retry=5)) == (
        b"event: e\nid: 1\nretry: 5\ndata: a\ndata: b\n\n"
    )


def test_encode_empty_event_still_reaches_the_client() -> None:
    """An empty data buffer is dropped by the parser, so data is always sent."""
    assert encode(Event()) == b"data: \n\n"
    assert decode(encode(Event())) == [message("")]


def test_encode_keeps_leading_space_of_data() -> None:
    assert encode(Event(" x")) == b"data:  x\n\n"
    assert decode(encode(Event(" x"))) == [message(" x")]


def test_encode_splits_data_on_cr_lf_and_crlf_only() -> None:
    assert (
        encode(Event("a\r\nb\rc\nd\u2028e"))
        == b"data: a\ndata: b\ndata: c\ndata: d\xe2\x80\xa8e\n\n"
    )


def test_encode_empty_event_type_and_id() -> None:
    """event "" means "message"; id "" resets the client's last event ID."""
    assert encode(Event("x", event="", id="")) == b"event: \nid: \ndata: x\n\n"
    assert decode(encode(Event("x", event="", id=""))) == [message("x")]


def test_encode_retry_zero() -> None:
    assert encode(Event("x", retry=0)) == b"retry: 0\ndata: x\n\n"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (Event(event="a\nb"), "event type must not contain CR or LF"),
        (Event(event="a\rb"), "event type must not contain CR or LF"),
        (Event(id="1\n"), "id must not contain CR or LF"),
        (Event(id="\r1"), "id must not contain CR or LF"),
        (Event(id="1\0"), "id must not contain NUL"),
        (Event(retry=-1), "retry must not be negative"),
        (Event(retry=True), "retry must be an int"),
        (Event(retry=1.5), "retry must be an int"),  # type: ignore[arg-type]
        (Event(retry="5"), "retry must be an int"),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_what_it_cannot_send(event: Event, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        encode(event)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (Event(data=5), "data must be a str"),  # type: ignore[arg-type]
        (Event(data=b"x"), "data must be a str"),  # type: ignore[arg-type]
        (Event(event=1), "event type must be a str"),  # type: ignore[arg-type]
        (Event(id=7), "id must be a str"),  # type: ignore[arg-type]
    ],
)
def test_encode_refuses_values_that_are_not_text(event: Event, reason: str) -> None:
    """A bare TypeError from deep inside would not say which field was wrong."""
    with pytest.raises(ValueError, match=reason):
        encode(event)


def test_encode_json_is_compact_utf8_json_in_data() -> None:
    assert encode_json({"token": "안녕"}, event="delta", id="3") == (
        'event: delta\nid: 3\ndata: {"token":"안녕"}\n\n'.encode()
    )
    assert decode(encode_json({"text": "a\nb"})) == [message('{"text":"a\\nb"}')]
    assert encode_json([1], retry=500) == b"retry: 500\ndata: [1]\n\n"


def test_encode_json_keeps_line_separators_inside_one_data_line() -> None:
    """U+2028 is ordinary data to SSE; JSON may leave it raw, and the decoder keeps it."""
    (event,) = decode(encode_json({"t": "a\u2028b"}))
    assert json.loads(event.data) == {"t": "a\u2028b"}


def test_response_headers_cannot_be_changed_by_one_app_for_all() -> None:
    with pytest.raises(TypeError):
        RESPONSE_HEADERS["Cache-Control"] = "max-age=60"  # type: ignore[index]
    assert RESPONSE_HEADERS == {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@pytest.mark.parametrize(
    "data",
    ["\n\ndata: forged\n\n", "\revent: x", "a\r\n\r\nid: 9\r\n\r\nretry: 1\r\n", "x\n\n\n"],
)
def test_data_cannot_forge_events_or_fields(data: str) -> None:
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    assert decode(encode(Event(data))) == [message(normalised)]


def test_comment_is_one_line_per_line_of_text() -> None:
    assert comment() == b": \n"
    assert comment("ping") == b": ping\n"
    assert comment("a\nb\r\nc\rd") == b": a\n: b\n: c\n: d\n"


def test_comment_cannot_forge_events_and_leaves_events_intact() -> None:
    stream = encode(Event("a", id="1")) + comment("x\n\ndata: forged\n\n") + encode(Event("b"))
    assert decode(stream) == [message("a", id="1"), message("b", id="1")]


# Properties: decode(encode(events)) gives the events back, however the bytes are cut

text = st.text(st.one_of(st.sampled_from("\r\n\0 :😀\ufeff"), st.characters(codec="utf-8")))
field = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"))
event_id = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0"))
events = st.lists(
    st.builds(
        Event,
        data=text,
        event=st.none() | field,
        id=st.none() | event_id,
        retry=st.none() | st.integers(min_value=0, max_value=2**40),
    ),
    max_size=5,
)


def expected(sent: list[Event]) -> tuple[list[Event], str, int | None]:
    """What a client sees: LF line breaks, type "message" by default, the id carried on."""
    received, last_id, retry = [], "", None
    for event in sent:
        last_id = last_id if event.id is None else event.id
        retry = retry if event.retry is None else event.retry
        data = event.data.replace("\r\n", "\n").replace("\r", "\n")
        received.append(Event(data, event.event or "message", last_id, event.retry))
    return received, last_id, retry


@settings(max_examples=150, deadline=None)
@given(sent=events, data=st.data())
def test_decode_recovers_what_encode_wrote(sent: list[Event], data: st.DataObject) -> None:
    stream = b"".join(encode(event) for event in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert decode_with_state(chunks) == expected(sent)


PIECES = [b"data", b"id", b"event", b"retry", b":", b" ", b"\r", b"\n", b"5", b"x", b"\0", BOM]
PIECES += [b"\xc3", b"\xa9", b"\xff", "한".encode()]


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=40), data=st.data())
def test_any_cut_of_any_stream_gives_same_result(pieces: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert decode_with_state(chunks) == decode_with_state([stream])
