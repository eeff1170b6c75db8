"""The checks of lesson 06's two exercises, out of the notebook so that its cells read
"call, result" (`server.course.exercise.check` runs them and says passed, failed or not
attempted).

- `assemble_reply_check(client)`: the learner's ``assemble_reply(chunks)`` against a real
  stream from the local model, with the usage chunk asked for and the reply cut by
  ``max_tokens``, compared with the same request unstreamed.
- `relay_events_check`: the learner's async generator ``relay_events(chunks)`` fed chunk
  dicts, then an upstream failure with no HTTP status, then one with a 503.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx2
import openai

from server.sse import Decoder, Event


def assemble_reply_check(client: openai.OpenAI) -> Callable[[Callable[..., Any]], None]:
    """A check of ``assemble_reply`` against the model behind `client`."""

    def check(fn: Callable[..., Any]) -> None:
        ask: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
        whole = client.chat.completions.create(**ask, max_tokens=12)
        stream = client.chat.completions.create(
            **ask,
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers={"x-fake-ttft": "0", "x-fake-tps": "0"},
        )
        reply = fn(stream)
        assert reply.text == whole.choices[0].message.content, f"text was {reply.text!r}"
        assert reply.finish_reason == "length", f"finish_reason was {reply.finish_reason!r}"
        assert reply.usage is not None, "usage is missing: it comes in the last chunk, alone"
        assert reply.usage.completion_tokens == 12, f"usage was {reply.usage}"

    return check


def fake_chunk(
    delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    """A Chat Completion chunk as `json.loads` gives it (`delta` None: the usage chunk)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c", "object": "chat.completion.chunk", "choices": choices, "usage": usage}


async def run_relay(
    fn: Callable[[AsyncIterator[dict[str, Any]]], Any],
    chunks: Iterable[dict[str, Any]],
    error: Exception | None = None,
) -> list[Event]:
    """Feed `chunks` to `fn` as an async iterator, then raise `error`; return its events."""

    async def source() -> AsyncIterator[dict[str, Any]]:
        for chunk in chunks:
            yield chunk
        if error is not None:
            raise error

    result = fn(source())
    if inspect.iscoroutine(result):  # a stub without `yield` is a coroutine: run it
        await result
    decoder = Decoder()
    return [event async for piece in result for event in decoder.feed(piece)]


async def relay_events_check(fn: Callable[..., Any]) -> None:
    """A check of ``relay_events``: deltas then done; an error event, with or without status."""
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    chunks = [
        fake_chunk({"role": "assistant", "content": ""}),
        fake_chunk({"content": "안녕"}),
        fake_chunk({"content": "!"}),
        fake_chunk({}, "stop"),
        fake_chunk(None, usage=usage),
    ]
    got = await run_relay(fn, chunks)
    kinds = [e.event for e in got]
    assert kinds == ["message", "message", "done"], f"event types were {kinds}"
    assert [json.loads(e.data) for e in got[:2]] == [{"delta": "안녕"}, {"delta": "!"}]
    done = json.loads(got[-1].data)
    assert done == {"finish_reason": "stop", "usage": usage}, f"done was {done}"

    request = httpx2.Request("POST", "http://upstream/v1/chat/completions")
    broke = openai.APIError("the model broke", request, body=None)  # no HTTP status
    got = await run_relay(fn, [fake_chunk({"content": "안"})], broke)
    kinds = [e.event for e in got]
    assert kinds == ["message", "error"], f"with a failing upstream the event types were {kinds}"
    error = json.loads(got[-1].data)
    assert "the model broke" in error["message"], f"the error event was {error}"
    assert error["status"] is None, f"a plain APIError has no status, but the event said {error}"

    unavailable = httpx2.Response(503, request=request)
    overloaded = openai.InternalServerError("overloaded", response=unavailable, body=None)
    error = json.loads((await run_relay(fn, [], overloaded))[-1].data)
    assert error["status"] == 503, f"an APIStatusError's status_code belongs in it: {error}"
