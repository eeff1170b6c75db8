"""Fixed SSE byte streams, served exactly as written, to look at the wire format (lesson 03).

    samples = start_app("server.apps.sse_samples:app")
    httpx2.get(f"{samples.url}/samples/every-field").content == SAMPLES["every-field"]

Each sample is a short, finite ``text/event-stream`` body whose exact bytes are in `SAMPLES`,
so a cell or a test can compare what arrived with what was sent, byte for byte, however the
network (or `server.course.wiretap`) cut it on the way:

- ``seed``: the seed notes' minimal stream, ``data: 안녕하세요`` and a blank line, twice.
- ``every-field``: a comment, an event with every field (``event``, ``id``, ``retry``, two
  ``data`` lines), a ``: ping`` heartbeat, and an event with Korean data.
- ``korean``: one event holding the seeds' fake LLM reply, for cutting inside characters.
- ``spec-example``: the WHATWG standard's example with a comment and three events.
- ``line-separator``: one JSON delta, as lesson 06's relay sends it (`encode_json` keeps
  non-ASCII text as UTF-8), holding U+2028 LINE SEPARATOR: ordinary data to SSE, but a line
  break to ``str.splitlines`` and so to httpx2's ``iter_lines()``.

``GET /`` lists the names; ``GET /samples/{name}`` sends that sample in one write and ends.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse

from server.asgi.sse_response import sse_response
from server.seed_texts import REPLY
from server.sse import Event, comment, encode, encode_json

SAMPLES: dict[str, bytes] = {
    # Written by hand, as the seed notes do: the smallest valid stream.
    "seed": "data: 안녕하세요\n\ndata: 두 번째 메시지입니다\n\n".encode(),
    "every-field": (
        comment("every field, then a heartbeat")
        + encode(Event("first line\nsecond line", event="greeting", id="1", retry=3000))
        + comment("ping")
        + encode(Event("안녕하세요", id="2"))
    ),
    "korean": encode(Event(REPLY)),
    # https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
    "spec-example": (
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n\n"
    ),
    "line-separator": encode_json({"delta": "첫 줄\u2028둘째 줄"}),  # "first line", "second line"
}


app = FastAPI(title="SSE samples")


@app.get("/")
def names() -> list[str]:
    return list(SAMPLES)


@app.get("/samples/{name}")
def sample(name: str) -> StreamingResponse:
    if name not in SAMPLES:
        raise HTTPException(404, f"no sample {name!r}; there are {', '.join(SAMPLES)}")
    return sse_response([SAMPLES[name]])  # one write, then the end
