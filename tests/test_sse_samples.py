"""The fixed SSE samples of lesson 03: exact bytes over a real server, and what they decode to."""

from __future__ import annotations

import httpx2
import pytest

from server.apps.sse_samples import SAMPLES
from server.course.launcher import Server
from server.course.wiretap import start_wiretap
from server.seed_texts import REPLY
from server.sse import Decoder, Event

EXPECTED = {
    "seed": [Event("안녕하세요", "message", ""), Event("두 번째 메시지입니다", "message", "")],
    "every-field": [
        Event("first line\nsecond line", "greeting", "1", 3000),
        Event("안녕하세요", "message", "2"),
    ],
    "korean": [Event(REPLY, "message", "")],
    "spec-example": [
        Event("first event", "message", "1"),
        Event("second event", "message", ""),
        Event(" third event", "message", ""),
    ],
    "line-separator": [Event('{"delta":"첫 줄\u2028둘째 줄"}', "message", "")],
}


def decode(chunks: list[bytes]) -> list[Event]:
    decoder = Decoder()
    return [event for chunk in chunks for event in decoder.feed(chunk)] + decoder.close()


def read_chunks(url: str) -> tuple[httpx2.Response, list[bytes]]:
    with httpx2.stream("GET", url) as response:
        return response, list(response.iter_raw())


@pytest.fixture
def samples(serve) -> Server:
    return serve("server.apps.sse_samples:app")


def test_every_sample_is_listed_and_expected() -> None:
    assert set(SAMPLES) == set(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_sample_decodes_to_its_events(name: str) -> None:
    assert decode([SAMPLES[name]]) == EXPECTED[name]


@pytest.mark.parametrize("name", EXPECTED)
def test_sample_arrives_byte_for_byte_as_an_event_stream(samples: Server, name: str) -> None:
    response, chunks = read_chunks(f"{samples.url}/samples/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert b"".join(chunks) == SAMPLES[name]


def test_index_lists_names_and_unknown_name_is_404(samples: Server) -> None:
    assert httpx2.get(f"{samples.url}/").json() == list(SAMPLES)
    response = httpx2.get(f"{samples.url}/samples/nope")
    assert response.status_code == 404
    assert "korean" in response.json()["detail"]


def test_korean_cut_into_tiny_reads_breaks_naive_decoding_not_the_decoder(
    samples: Server,
) -> None:
    """The lesson's claim over a real socket: reads split inside characters."""
    # About 30 pieces of 2 bytes, 10 ms apart: even a client slow enough to find several
    # waiting at once reads far more than 10 times, and some reads end inside a character.
    with start_wiretap(samples, chunk_size=2, delay=0.01) as tap:
        _, chunks = read_chunks(f"{tap.url}/samples/korean")
    assert b"".join(chunks) == SAMPLES["korean"]
    assert len(chunks) > 10, [len(c) for c in chunks]
    naive = "".join(chunk.decode(errors="replace") for chunk in chunks)
    assert "\ufffd" in naive
    assert decode(chunks) == EXPECTED["korean"]
