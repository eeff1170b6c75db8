"""The local OpenAI-compatible server, checked with the real `openai` client, sync and async.

The wire format is checked against the `openai` package itself: its SSE decoder and stream
classes parse every response, and every JSON payload is validated (not just constructed) with
the package's own pydantic types.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pydantic
import pytest
from conftest import wait_until
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from server.apps import fake_openai
from server.clients.sse_client import connect_sse
from server.course.launcher import LauncherError, Server, start_app
from server.seed_texts import PROMPT, REPLY
from server.sse import Decoder

HELLO, HELLO_REPLY = PROMPT, REPLY  # the seeds' prompt and the fake model's answer
FAST = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "0"}


@pytest.fixture(scope="module")
def llm() -> Iterator[Server]:
    with start_app("server.apps.fake_openai:app", env=FAST, name="fake_openai") as server:
        yield server


def client(server: Server, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0, **kwargs)


@pytest.fixture
def api(llm: Server) -> Iterator[openai.OpenAI]:
    """A client of the module's server, closed after the test (its pool holds sockets)."""
    with client(llm) as api:
        yield api


def async_client(server: Server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0)


def stats(server: Server) -> dict[str, int]:
    return httpx2.get(f"{server.url}/stats").json()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --- the model ---------------------------------------------------------------------------


def test_tokens_join_back_to_the_text() -> None:
    assert fake_openai.tokenize(HELLO_REPLY)[:3] == ["안", "녕", "하"]
    for text in (HELLO_REPLY, fake_openai.reply_for("hi"), "a  b\tc 한 글자"):
        assert "".join(fake_openai.tokenize(text)) == text


def test_reply_is_deterministic_per_prompt_and_seed() -> None:
    assert fake_openai.reply_for(HELLO) == HELLO_REPLY
    assert fake_openai.reply_for("hi", seed=1) == fake_openai.reply_for("hi", seed=1)
    assert fake_openai.reply_for("hi", seed=1) != fake_openai.reply_for("hi", seed=2)
    assert len(fake_openai.tokenize(fake_openai.reply_for("hi", tokens=200))) >= 200


# --- Chat Completions --------------------------------------------------------------------


def test_chat_not_streamed_answers_the_seeds_prompt(llm: Server, api: openai.OpenAI) -> None:
    reply = api.chat.completions.create(model="fake-llm", messages=user(HELLO))
    assert reply.choices[0].message.content == HELLO_REPLY
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == len(
        fake_openai.tokenize(HELLO_REPLY)
    )


def test_chat_streamed_deltas_join_to_the_unstreamed_text(api: openai.OpenAI) -> None:
    whole = api.chat.completions.create(model="m", messages=user("hi"), seed=7)
    chunks = list(api.chat.completions.create(model="m", messages=user("hi"), seed=7, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks][-2:] == [None, "stop"]
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content
    assert len({c.id for c in chunks}) == 1


def test_chat_usage_chunk_when_asked(api: openai.OpenAI) -> None:
    chunks = list(
        api.chat.completions.create(
            model="m", messages=user(HELLO), stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(fake_openai.tokenize(HELLO_REPLY))


def test_chat_max_tokens_stops_with_length(api: openai.OpenAI) -> None:
    reply = api.chat.completions.create(model="m", messages=user("hi"), max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5


def test_chat_async_client_streams(llm: Server) -> None:
    async def main() -> tuple[str, str]:
        async with async_client(llm) as aclient:
            whole = await aclient.chat.completions.create(model="m", messages=user("hey"))
            stream = await aclient.chat.completions.create(
                model="m", messages=user("hey"), stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in stream]
            return whole.choices[0].message.content or "", "".join(parts)

    whole, streamed = asyncio.run(main())
    assert streamed == whole != ""


def test_chat_wire_format_matches_the_openai_types(llm: Server) -> None:
    body = {"model": "m", "messages": user(HELLO), "stream": True}
    headers = {"authorization": "Bearer sk-test"}
    raw = httpx2.post(f"{llm.url}/v1/chat/completions", json=body, headers=headers)
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.content.endswith(b"data: [DONE]\n\n")
    events = Decoder().feed(raw.content)
    assert events[-1].data == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(e.data) for e in events[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == HELLO_REPLY
    whole = httpx2.post(
        f"{llm.url}/v1/chat/completions", json={**body, "stream": False}, headers=headers
    )
    ChatCompletion.model_validate(whole.json())


# --- Responses ---------------------------------------------------------------------------

RESPONSE_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_responses_not_streamed(api: openai.OpenAI) -> None:
    reply = api.responses.create(model="m", instructions="2문장 이내로 대답해줘.", input=HELLO)
    assert reply.output_text == HELLO_REPLY
    assert reply.status == "completed"
    assert reply.usage is not None and reply.usage.output_tokens == len(
        fake_openai.tokenize(HELLO_REPLY)
    )


def test_responses_streamed_events_in_order(api: openai.OpenAI) -> None:
    events = list(api.responses.create(model="m", input="hi", stream=True))
    kinds = [e.type for e in events]
    assert [k for i, k in enumerate(kinds) if i == 0 or k != kinds[i - 1]] == RESPONSE_EVENTS
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == api.responses.create(model="m", input="hi").output_text


def test_responses_stream_helper_sync_and_async(llm: Server, api: openai.OpenAI) -> None:
    with api.responses.stream(model="m", input=HELLO) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == HELLO_REPLY

    async def main() -> str:
        async with (
            async_client(llm) as aclient,
            aclient.responses.stream(model="m", input=HELLO) as astream,
        ):
            return (await astream.get_final_response()).output_text

    assert asyncio.run(main()) == HELLO_REPLY


def test_responses_wire_format_matches_the_openai_types(llm: Server) -> None:
    headers = {"authorization": "Bearer sk-test"}
    body = {"model": "m", "input": [{"role": "user", "content": "hi"}], "stream": True}
    adapter = pydantic.TypeAdapter(ResponseStreamEvent)
    url = f"{llm.url}/v1/responses"
    with (
        httpx2.Client() as client,
        connect_sse(client, "POST", url, json=body, headers=headers) as events,
    ):
        for event in events:
            parsed = adapter.validate_json(event.data)
            assert event.event == parsed.type  # the SSE event name repeats the JSON type
    whole = httpx2.post(f"{llm.url}/v1/responses", json={**body, "stream": False}, headers=headers)
    Response.model_validate(whole.json())


def test_models(llm: Server, api: openai.OpenAI) -> None:
    assert "fake-llm" in [m.id for m in api.models.list()]


# --- errors ------------------------------------------------------------------------------


def test_bad_or_missing_key_is_a_401(llm: Server) -> None:
    bad = openai.OpenAI(base_url=f"{llm.url}/v1", api_key=fake_openai.BAD_KEY, max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="m", messages=user("hi"))
    assert caught.value.code == "invalid_api_key"
    missing = httpx2.post(f"{llm.url}/v1/responses", json={"model": "m", "input": "hi"})
    assert missing.status_code == 401
    assert "didn't provide an API key" in missing.json()["error"]["message"]


def test_429_has_retry_after_and_the_client_retries(llm: Server, api: openai.OpenAI) -> None:
    before = stats(llm)["requests"]
    retrying = api.with_options(max_retries=2)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as caught:
        retrying.chat.completions.create(
            model="m",
            messages=user("hi"),
            extra_headers={"x-fake-status": "429", "x-fake-retry-after": "0.05"},
        )
    assert caught.value.response.headers["retry-after"] == "1"
    assert caught.value.response.headers["retry-after-ms"] == "50"
    assert stats(llm)["requests"] - before == 3  # one try and two retries
    # It waited 2 x 50 ms (retry-after-ms), not 2 x 1 s (Retry-After): under 2 s, however slow
    # the machine, is the deadline that tells the two apart.
    assert time.monotonic() - started < 2.0


def test_failure_in_the_middle_of_a_chat_stream(llm: Server, api: openai.OpenAI) -> None:
    before = stats(llm)["failed"]
    parts = []
    stream = api.chat.completions.create(
        model="m", messages=user("hi"), stream=True, extra_headers={"x-fake-fail-after": "3"}
    )
    with pytest.raises(openai.APIError, match="middle of the stream"):
        for chunk in stream:
            parts.append(chunk.choices[0].delta.content or "")
    assert len([p for p in parts if p]) == 3
    assert stats(llm)["failed"] == before + 1


def test_failure_in_the_middle_of_a_responses_stream(api: openai.OpenAI) -> None:
    events = list(
        api.responses.create(
            model="m", input="hi", stream=True, extra_headers={"x-fake-fail-after": "2"}
        )
    )
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    assert events[-1].response.error is not None
    assert sum(e.type == "response.output_text.delta" for e in events) == 2


# --- bad input: the 400 the real API sends, never a bare 500 ---------------------------------

AUTH = {"authorization": "Bearer sk-test"}
ENDPOINTS = ["/v1/chat/completions", "/v1/responses"]


def assert_openai_400(response: httpx2.Response, *words: str) -> dict[str, Any]:
    """A 400 with OpenAI's error object, whose message says each of `words`."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    for word in words:
        assert word in error["message"], error["message"]
    return error


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", ["could not parse the JSON body"]),
        (b'{"model": "m", "input": "hi"', ["could not parse the JSON body"]),
        (b"[1, 2]", ["expected an object", "an array"]),
        (b'"hi"', ["expected an object", "a string"]),
        (b'{"model": "m", "input": "\xff\xfe", "messages": "\xff"}', ["not valid UTF-8"]),
    ],
    ids=["not-json", "cut-short", "array", "string", "not-utf8"],
)
def test_a_body_that_is_not_a_json_object_is_a_400(
    llm: Server, path: str, body: bytes, words: list[str]
) -> None:
    headers = {**AUTH, "content-type": "application/json"}
    assert_openai_400(httpx2.post(f"{llm.url}{path}", content=body, headers=headers), *words)


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"messages": user("hi")}, "model", ["Missing required parameter: 'model'"]),
        ({"model": "m"}, "messages", ["Missing required parameter: 'messages'"]),
        ({"model": 5, "messages": user("hi")}, "model", ["expected a string", "an integer"]),
        ({"model": "m", "messages": user("hi"), "stream": None}, None, []),
    ],
)
def test_chat_fields_checked_as_the_real_api_does(
    llm: Server, fields: dict[str, Any], param: str | None, words: list[str]
) -> None:
    response = httpx2.post(f"{llm.url}/v1/chat/completions", json=fields, headers=AUTH)
    if param is None:  # null means "not given", as in the real API
        assert response.status_code == 200
    else:
        assert assert_openai_400(response, *words)["param"] == param


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"messages": "hi"}, "messages", ["'messages'", "expected an array", "a string"]),
        ({"messages": user("hi"), "stream": "yes"}, "stream", ["expected a boolean"]),
        ({"messages": []}, "messages", ["empty array"]),
        ({"messages": ["hi"]}, "messages[0]", ["expected an object"]),
        ({"messages": [{"content": "hi"}]}, "messages[0].role", ["Missing required"]),
        ({"messages": user("hi"), "seed": 1.5}, "seed", ["expected an integer"]),
        ({"messages": user("hi"), "max_tokens": "5"}, "max_tokens", ["expected an integer"]),
        ({"messages": user("hi"), "max_tokens": 0}, "max_tokens", [">= 1"]),
        ({"messages": user("hi"), "stream_options": []}, "stream_options", ["an object"]),
    ],
)
def test_chat_refuses_what_the_real_api_refuses(
    api: openai.OpenAI, fields: dict[str, Any], param: str, words: list[str]
) -> None:
    # The client's type hints do not stop a caller at run time: the server must.
    create: Any = api.chat.completions.create
    with pytest.raises(openai.BadRequestError) as caught:
        create(model="m", **fields)
    assert caught.value.param == param
    assert caught.value.type == "invalid_request_error"
    for word in words:
        assert word in caught.value.message


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"input": 5}, "input", ["expected a string or an array", "an integer"]),
        ({"input": "hi", "stream": "yes"}, "stream", ["expected a boolean"]),
        ({"input": ["hi"]}, "input[0]", ["expected an object"]),
        ({"input": "hi", "instructions": ["be brief"]}, "instructions", ["expected a string"]),
        ({"input": "hi", "max_output_tokens": -1}, "max_output_tokens", [">= 1"]),
    ],
)
def test_responses_refuse_what_the_real_api_refuses(
    api: openai.OpenAI, fields: dict[str, Any], param: str, words: list[str]
) -> None:
    create: Any = api.responses.create
    with pytest.raises(openai.BadRequestError) as caught:
        create(model="m", **fields)
    assert caught.value.param == param
    for word in words:
        assert word in caught.value.message


@pytest.mark.parametrize(
    ("header", "value", "words"),
    [
        ("x-fake-ttft", "soon", ["x-fake-ttft", "expected a number from 0 to 600", "'soon'"]),
        ("x-fake-tps", "-1", ["x-fake-tps", "from 0.1 to 100000, or 0"]),
        ("x-fake-tps", "nan", ["x-fake-tps"]),
        ("x-fake-tokens", "2.5", ["x-fake-tokens", "expected an integer"]),
        ("x-fake-status", "200", ["x-fake-status", "from 400 to 599"]),
        ("x-fake-fail-after", "three", ["x-fake-fail-after"]),
    ],
)
def test_a_malformed_knob_is_a_400_that_names_it(
    llm: Server, api: openai.OpenAI, header: str, value: str, words: list[str]
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        api.chat.completions.create(model="m", messages=user("hi"), extra_headers={header: value})
    for word in words:
        assert word in caught.value.message
    raw = httpx2.post(
        f"{llm.url}/v1/responses",
        json={"model": "m", "input": "hi"},
        headers={**AUTH, header: value},
    )
    assert_openai_400(raw, header)


def test_a_malformed_knob_in_the_environment_stops_the_server_at_startup() -> None:
    expected = "Invalid FAKE_OPENAI_TPS: expected a number from 0.1 to 100000, or 0"
    with pytest.raises(LauncherError, match=re.escape(expected)):
        start_app("server.apps.fake_openai:app", env={"FAKE_OPENAI_TPS": "fast"})


# --- timing and cancellation ---------------------------------------------------------------


def test_time_to_first_token_and_rate_are_as_configured(api: openai.OpenAI) -> None:
    headers = {"x-fake-ttft": "0.3", "x-fake-tps": "50"}
    started = time.monotonic()
    arrivals = []
    for chunk in api.chat.completions.create(
        model="m", messages=user(HELLO), stream=True, extra_headers=headers
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    tokens = len(fake_openai.tokenize(HELLO_REPLY))
    # Never early: the server keeps to its schedule. Late is the machine's load, so the upper
    # bounds are only deadlines (bench/ measures; tests do not).
    assert 0.3 <= arrivals[0] < 10, arrivals
    assert 0.3 + (tokens - 1) / 50 <= arrivals[-1] < 20, arrivals


def test_a_client_that_leaves_cancels_the_generation(llm: Server) -> None:
    before = stats(llm)
    body = {"model": "m", "messages": user("hi"), "stream": True}
    # 400 tokens at 20 per second: 20 s unless the server stops when the client leaves.
    headers = {"authorization": "Bearer sk-test", "x-fake-tps": "20", "x-fake-tokens": "400"}
    with httpx2.stream("POST", f"{llm.url}/v1/chat/completions", json=body, headers=headers) as r:
        lines = r.iter_lines()
        assert json.loads(next(lines).removeprefix("data: "))["object"] == "chat.completion.chunk"
        assert stats(llm)["active"] == before["active"] + 1
    left = "the generation its client left to be cancelled"
    wait_until(lambda: stats(llm)["cancelled"] > before["cancelled"], left)
    after = stats(llm)
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["active"] == before["active"]
    assert 1 <= after["tokens"] - before["tokens"] < 400  # what was sent before it stopped
