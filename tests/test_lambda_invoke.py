"""server.clients.lambda_invoke: mangum, called as Lambda calls it, on a real streaming app."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI

from server.asgi.sse_response import sse_response
from server.clients.lambda_invoke import invoke, url_event
from server.sse import Decoder, Event, encode

PAUSE = 0.1
written: list[float] = []
app = FastAPI()


async def three_events() -> AsyncIterator[bytes]:
    for n in range(3):
        written.append(time.perf_counter())
        yield encode(Event(str(n)))
        await asyncio.sleep(PAUSE)


@app.get("/three")
async def three() -> object:
    return sse_response(three_events())


def test_the_event_is_a_function_url_s_payload_2_0() -> None:
    event = url_event("/x", "POST")
    assert event["version"] == "2.0" and event["rawPath"] == "/x"
    assert event["requestContext"]["http"]["method"] == "POST"


def test_a_stream_comes_back_whole_after_its_last_event_and_calls_can_repeat() -> None:
    for _ in range(2):  # a second call in the same thread gets an event loop of its own
        written.clear()
        call = invoke(app, "/three")
        body = call.result["body"]
        assert isinstance(body, str)
        assert [e.data for e in Decoder().feed(body.encode())] == ["0", "1", "2"]
        assert call.returned >= written[-1] + PAUSE * 0.9 > call.started
    assert threading.current_thread() is threading.main_thread()
