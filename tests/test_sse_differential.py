"""server.sse.Decoder against two independent SSE parsers: httpx-sse and the openai client.

Each runs the way its users run it: httpx-sse through ``EventSource.iter_sse()`` over an
``httpx.Response`` (httpx's text decoding, then httpx-sse's line splitter and decoder),
openai through ``openai._streaming.SSEDecoder().iter_bytes()``.

On spec-valid streams the three agree. Where they do not, a named test below shows
exactly how the other parser differs from the WHATWG standard (§9.2.6), and so from a
browser's EventSource. Results are compared as (data, type, id, retry), with openai's
``None`` type and id read as "message" and "" (its way of saying "not set").
"""

from collections.abc import Iterator

import httpx  # httpx-sse, run as its users run it: EventSource over an httpx.Response
import httpx2
import pytest
from httpx_sse import EventSource
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._streaming import SSEDecoder as OpenAIDecoder

from server.sse import Decoder, Event, comment, encode

Seen = list[tuple[str, str, str, int | None]]


def ours(chunks: list[bytes]) -> Seen:
    decoder = Decoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)] + decoder.close()
    return [(e.data, e.event or "message", e.id or "", e.retry) for e in events]


class Body(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)


def httpx_sse(chunks: list[bytes], content_type: str = "text/event-stream") -> Seen:
    response = httpx.Response(200, headers={"content-type": content_type}, stream=Body(chunks))
    return [(e.data, e.event, e.id, e.retry) for e in EventSource(response).iter_sse()]


def openai(chunks: list[bytes]) -> Seen:
    events = OpenAIDecoder().iter_bytes(iter(chunks))
    return [(e.data, e.event or "message", e.id or "", e.retry) for e in events]


# Where the three agree

CORPUS = {
    "spec_yhoo": b"data: YHOO\ndata: +2\ndata: 10\n\n",
    "spec_three_events": b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
    b"data:  third event\n\n",
    "spec_empty_data": b"data\n\ndata\ndata\n\ndata:",
    "spec_space_optional": b"data:test\n\ndata: test\n\n",
    "crlf": b"event: e\r\nid: 1\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
    "cr": b"data: a\rdata: b\r\rid: 2\rdata: c\r\r",
    "mixed_endings": b"data: a\r\n\rdata: b\n\r\ndata: c\r\r\n",
    "utf8": "event: ☃\ndata: 한국어 😀\n\ndata: a\u2028b\x85c\x0cd\n\n".encode(),
    "nul_in_data": b"data: a\0b\n\n",
    "id_with_nul_ignored": b"id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n",
    "id_reset": b"id: 1\ndata: a\n\nid:\ndata: b\n\n",
    "retry": b"retry: 3000\ndata: a\n\ndata: b\n\n",
    "comments_and_unknown_fields": b": hi\ndata: a\nfoo: bar\nData: x\n: bye\n\n",
    "event_type_reset": b"event: e\ndata: a\n\ndata: b\n\nevent:\ndata: c\n\n",
    "unfinished_tail": b"data: a\n\ndata: b\nid: 9\n",
    "llm": b"".join(
        f'data: {{"choices":[{{"index":0,"delta":{{"content":"tok{i}"}}}}]}}\n\n'.encode()
        for i in range(20)
    )
    + b"data: [DONE]\n\n",
}


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_decodes_the_same_in_all_three(name: str) -> None:
    stream = CORPUS[name]
    expected = ours([stream])
    assert expected, "every corpus stream has at least one event"
    cuts = [[stream], [stream[i : i + 1] for i in range(len(stream))]]
    cuts += [[stream[:i], stream[i:]] for i in range(1, len(stream))]
    for chunks in cuts:
        assert ours(chunks) == expected
        assert httpx_sse(chunks) == expected
        assert openai(chunks) == expected


@settings(max_examples=50, deadline=None)
@given(
    sent=st.lists(
        st.builds(
            Event,
            data=st.text(st.one_of(st.sampled_from("\r\n :"), st.characters(codec="utf-8"))),
            event=st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\r\n")),
            id=st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0")),
            retry=st.none() | st.integers(min_value=0, max_value=2**40),
        ),
        max_size=5,
    ),
    size=st.integers(1, 64),
)
def test_encoded_events_decode_the_same_in_all_three(sent: list[Event], size: int) -> None:
    stream = b"".join(encode(event) for event in sent)
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert httpx_sse(chunks) == ours(chunks)
    assert openai(chunks) == ours(chunks)


# Where httpx-sse and openai differ from the standard


def test_bom_at_start_loses_the_first_event() -> None:
    """The standard drops one leading byte order mark. httpx-sse and openai keep it, so the
    first line's field name is "\\ufeffdata", an unknown field, and the first event is lost."""
    chunks = [b"\xef\xbb\xbfdata: first\n\ndata: second\n\n"]
    assert ours(chunks) == [("first", "message", "", None), ("second", "message", "", None)]
    assert httpx_sse(chunks) == openai(chunks) == [("second", "message", "", None)]


@pytest.mark.parametrize(
    ("value", "parsed"), [("-5", -5), ("+5", 5), (" 5", 5), ("5 ", 5), ("５", 5), ("1_000", 1000)]
)
def test_retry_that_int_accepts_is_used(value: str, parsed: int) -> None:
    """The standard takes retry only if it is all ASCII digits. httpx-sse and openai call
    int(), which also takes a sign, surrounding spaces, underscores and non-ASCII digits."""
    chunks = [f"retry: {value}\ndata: x\n\n".encode()]
    assert ours(chunks) == [("x", "message", "", None)]
    assert httpx_sse(chunks) == openai(chunks) == [("x", "message", "", parsed)]


@pytest.mark.parametrize(
    ("block", "dispatched"),
    [
        (b"event: update\n\n", ("", "update", "", None)),
        (b"id: 7\n\n", ("", "message", "7", None)),
        (b"retry: 5\n\n", ("", "message", "", 5)),
    ],
    ids=["event-only", "id-only", "retry-only"],
)
def test_block_without_data_is_dispatched(block: bytes, dispatched: tuple) -> None:
    """The standard dispatches nothing when the data buffer is empty. httpx-sse and openai
    dispatch an event with data "" if the block set any field."""
    assert ours([block]) == []
    assert httpx_sse([block]) == openai([block]) == [dispatched]


def test_blank_lines_after_an_id_dispatch_empty_events() -> None:
    """Once a stream has sent a non-empty id, httpx-sse and openai dispatch an empty event
    on every further blank line, because the id (which rightly persists) counts as
    "something to dispatch". A heartbeat written as comment + blank line (as sse-starlette
    does) then reaches them as an event with data "", and the openai client's Stream calls
    json.loads("") on it. That is why server.sse.comment() ends without a blank line."""
    heartbeat_with_blank_line = b": ping\n\n"
    chunks = [encode(Event("a", id="1")), heartbeat_with_blank_line, b"\n"]
    assert ours(chunks) == [("a", "message", "1", None)]
    assert (
        httpx_sse(chunks)
        == openai(chunks)
        == [("a", "message", "1", None)] + [("", "message", "1", None)] * 2
    )

    ours_heartbeat = [encode(Event("a", id="1")), comment("ping"), encode(Event("b"))]
    assert httpx_sse(ours_heartbeat) == openai(ours_heartbeat) == ours(ours_heartbeat)


def test_openai_raises_on_invalid_utf8() -> None:
    """The standard decodes invalid UTF-8 to U+FFFD, as httpx-sse does. openai decodes each
    line strictly, so one bad byte ends the whole stream with UnicodeDecodeError."""
    chunks = [b"data: a\xffb\n\n"]
    assert ours(chunks) == httpx_sse(chunks) == [("a\ufffdb", "message", "", None)]
    with pytest.raises(UnicodeDecodeError):
        openai(chunks)


def test_httpx_sse_honours_a_charset_parameter() -> None:
    """Event streams are always UTF-8; the standard gives no way to pick another encoding.
    httpx decodes the body with the Content-Type charset, so httpx-sse shows mojibake."""
    chunks = ["data: café\n\n".encode()]
    assert ours(chunks) == openai(chunks) == [("café", "message", "", None)]
    latin1 = "text/event-stream; charset=iso-8859-1"
    assert httpx_sse(chunks, content_type=latin1) == [("cafÃ©", "message", "", None)]


def test_httpx_sse_holds_back_a_cr_at_the_end_of_a_chunk() -> None:
    """A CR ends a line. httpx-sse holds back a CR that ends a chunk (in case an LF
    follows), so an event ended by CR CR waits for the next chunk: on a quiet stream,
    until the next heartbeat. server.sse and openai dispatch at once and skip the LF
    if it does come."""
    log = []

    def chunks() -> Iterator[bytes]:
        yield b"data: a\r\r"
        log.append("next chunk")
        yield b": later\r"

    class LoggingBody(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            return chunks()

    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=LoggingBody()
    )
    log.extend(event.data for event in EventSource(response).iter_sse())
    assert log == ["next chunk", "a"]

    log.clear()
    log.extend(event.data for event in OpenAIDecoder().iter_bytes(chunks()))
    assert log == ["a", "next chunk"]

    log.clear()
    decoder = Decoder()
    for chunk in chunks():
        log.extend(event.data for event in decoder.feed(chunk))
    assert log == ["a", "next chunk"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c"])
def test_iter_lines_is_not_an_sse_line_splitter(separator: str) -> None:
    """httpx2's `iter_lines()` (httpx's too) splits like `str.splitlines`: on U+2028, U+0085,
    form feed and more, which SSE treats as data. A parser built on it cuts a JSON delta in two.
    httpx-sse splits the text of `iter_text()` itself, on CR and LF only, as server.sse does."""
    chunks = [f'data: {{"delta":"a{separator}b"}}\n\n'.encode()]
    response = httpx2.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(chunks)
    )
    assert list(response.iter_lines()) == ['data: {"delta":"a', 'b"}', ""]
    intact = [(f'{{"delta":"a{separator}b"}}', "message", "", None)]
    assert ours(chunks) == httpx_sse(chunks) == openai(chunks) == intact


def test_openai_reports_unset_type_and_id_as_none() -> None:
    """Not a parsing difference, a representation one: where a browser (and server.sse and
    httpx-sse) report type "message" and lastEventId "", openai gives None for both, so
    code that checks event.event == "message" never matches."""
    (event,) = OpenAIDecoder().iter_bytes(iter([b"data: x\n\n"]))
    assert (event.event, event.id) == (None, None)
    assert Decoder().feed(b"data: x\n\n") == [Event("x", "message", "", None)]
