"""The LLM relay against the local OpenAI-compatible server, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import nbformat
import openai
import pytest
from conftest import wait_until
from openai.types.chat import ChatCompletionChunk

from server.apps import fake_openai
from server.apps.llm_relay.heartbeat import HEARTBEAT, HeartbeatResponse
from server.apps.llm_relay.plain import plain_chat_events
from server.apps.llm_relay.relay import relay_events
from server.clients.llm_stream import assemble_reply
from server.clients.sse_client import EventStream, connect_sse
from server.course.launcher import LauncherError, Server, start_app
from server.llm.chunks import upstream_chunks
from server.llm.config import LOCAL_KEY, NoUpstreamError, Settings, upstream_from_env
from server.llm.upstream import Upstream, close_within, status_of
from server.seed_texts import PROMPT, REPLY
from server.sse import Decoder, Event, encode

HELLO, HELLO_REPLY = PROMPT, REPLY  # the seeds' prompt and the fake model's answer
NO_DOTENV = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "OPENAI_MODEL": ""}


@pytest.fixture(scope="module")
def llm() -> Iterator[Server]:
    env = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "0"}
    with start_app("server.apps.fake_openai:app", env=env, name="fake_openai") as server:
        yield server


@pytest.fixture(scope="module")
def relay(llm: Server) -> Iterator[Server]:
    env = {**NO_DOTENV, "OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test"}
    with start_app("server.apps.llm_relay:app", env=env, name="llm_relay") as server:
        yield server


def relay_to(serve: Callable[..., Server], llm: Server, **env: str) -> Server:
    env = {**NO_DOTENV, "OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test", **env}
    return serve("server.apps.llm_relay:app", env=env)


def events(response: httpx2.Response) -> list[Event]:
    return list(EventStream(response))


def stats_of(llm: Server) -> dict[str, int]:
    """The fake model's counts of its generations (active, finished, cancelled, tokens...)."""
    return dict(httpx2.get(f"{llm.url}/stats").json())


def text_of(received: list[Event]) -> str:
    return "".join(json.loads(e.data)["delta"] for e in received if e.event == "message")


# --- configuration -----------------------------------------------------------------------------


def test_upstream_from_env() -> None:
    local = upstream_from_env({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert local is not None and local.base_url == "http://127.0.0.1:9/v1"
    assert local.api_key == LOCAL_KEY and "127.0.0.1:9" in local.label
    cloud = upstream_from_env({"OPENAI_API_KEY": "sk-x", "OPENAI_MODEL": "gpt-x"})
    assert cloud is not None and cloud.base_url is None and cloud.model == "gpt-x"
    assert "OpenAI" in cloud.label


def test_no_upstream_says_what_to_set() -> None:
    for env in ({}, {"OPENAI_API_KEY": " ", "OPENAI_BASE_URL": ""}, {"OPENAI_MODEL": "m"}):
        with pytest.raises(NoUpstreamError, match="OPENAI_BASE_URL and OPENAI_API_KEY"):
            upstream_from_env(env)


def test_settings_from_env() -> None:
    assert Settings.from_env({}) == Settings(15.0, 60.0, 1)
    env = {"RELAY_HEARTBEAT": "0.5", "RELAY_TIMEOUT": " 2 ", "RELAY_MAX_RETRIES": "0"}
    assert Settings.from_env(env) == Settings(0.5, 2.0, 0)
    for name, value in [("RELAY_HEARTBEAT", "0"), ("RELAY_TIMEOUT", "inf"),
                        ("RELAY_HEARTBEAT", "soon"), ("RELAY_MAX_RETRIES", "1.5")]:  # fmt: skip
        with pytest.raises(ValueError, match=f"{name} must be .*, got '{value}'"):
            Settings.from_env({name: value})


def test_upstream_from_dotenv_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-file\nOPENAI_MODEL=from-file\n")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_MODEL", "from-env")  # the environment wins over the file
    upstream = upstream_from_env(dotenv=str(tmp_path / ".env"))
    assert upstream is not None
    assert (upstream.api_key, upstream.model) == ("sk-from-file", "from-env")


# --- the relay generator, without a network ----------------------------------------------------


def chunk(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    """A Chat Completion chunk as `json.loads` gives it: what the relay works with."""
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [choice]}  # fmt: skip


async def collect(chunks: list[dict[str, Any]], fail: bool = False) -> list[Event]:
    async def source() -> AsyncIterator[dict[str, Any]]:
        for c in chunks:
            yield c
        if fail:
            raise openai.APIError("boom", request=httpx2.Request("POST", "http://x"), body=None)

    decoder = Decoder()
    return [e async for piece in relay_events(source()) for e in decoder.feed(piece)]


def test_relay_events_forwards_deltas_then_done() -> None:
    got = asyncio.run(collect([chunk(""), chunk("a"), chunk("b\nc"), chunk(None, "stop")]))
    assert [e.event for e in got] == ["message", "message", "done"]
    assert text_of(got) == "ab\nc"
    assert json.loads(got[-1].data) == {"finish_reason": "stop", "usage": None}


def test_relay_events_turns_a_failure_into_an_error_event() -> None:
    got = asyncio.run(collect([chunk("a")], fail=True))
    assert [e.event for e in got] == ["message", "error"]
    assert "boom" in json.loads(got[-1].data)["message"]


def test_relay_events_forwards_usage_from_the_last_chunk() -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    got = asyncio.run(collect([chunk("x"), chunk(None, "length"), {"choices": [], "usage": usage}]))
    assert json.loads(got[-1].data) == {"finish_reason": "length", "usage": usage}


class RawResponse:
    """Stands in for `openai.AsyncAPIResponse`: the body as the network delivered it."""

    def __init__(self, reads: list[bytes], then: Exception | None = None) -> None:
        self.reads, self.then = reads, then
        self.http_response = httpx2.Response(200, request=httpx2.Request("POST", "http://llm"))

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        for read in self.reads:
            yield read
        if self.then is not None:
            raise self.then


def upstream(reads: list[bytes], then: Exception | None = None) -> list[Any]:
    """What `upstream_chunks` yields for these reads: chunks, then the exception it raised."""

    async def run() -> list[Any]:
        got: list[Any] = []
        response: Any = RawResponse(reads, then)
        try:
            async for item in upstream_chunks(response):
                got.append(item)
        except openai.APIError as error:
            got.append(error)
        return got

    return asyncio.run(run())


def wire(*chunks: dict[str, Any] | str) -> bytes:
    return b"".join(encode(Event(c if isinstance(c, str) else json.dumps(c))) for c in chunks)


def test_upstream_chunks_parses_events_however_the_reads_cut_them() -> None:
    body = wire(chunk(""), chunk("안"), chunk("녕"), chunk(None, "stop"), "[DONE]")
    expected = [chunk(""), chunk("안"), chunk("녕"), chunk(None, "stop")]
    assert upstream([body]) == expected  # all events in one read
    cut = [body[i : i + 7] for i in range(0, len(body), 7)]  # mid-line, mid-character
    assert upstream(cut) == expected
    assert upstream([bytes([b]) for b in body]) == expected  # one byte at a time


def test_upstream_chunks_raises_api_errors_like_the_client() -> None:
    failure = {"error": {"message": "The model failed (injected).", "type": "server_error"}}
    got = upstream([wire(chunk("a"), failure, chunk("never"))])
    assert got[0] == chunk("a") and len(got) == 2
    assert isinstance(got[1], openai.APIError) and got[1].message == "The model failed (injected)."
    got = upstream([wire(chunk("a"), "<html>502 Bad Gateway</html>")])
    assert isinstance(got[1], openai.APIError) and "not JSON" in got[1].message
    got = upstream([wire(chunk("a"))], then=httpx2.RemoteProtocolError("peer closed"))
    assert got[0] == chunk("a") and type(got[1]) is openai.APIConnectionError
    got = upstream([], then=httpx2.ReadTimeout("slow"))
    assert type(got[0]) is openai.APITimeoutError


def test_assemble_reply_keeps_usage() -> None:
    def typed(content: str | None = None, finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(chunk(content, finish))

    usage_chunk = typed().model_copy(
        update={"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    )
    reply = assemble_reply([typed("x"), typed("y", "length"), usage_chunk])
    assert (reply.text, reply.finish_reason) == ("xy", "length")


# --- end to end --------------------------------------------------------------------------------


def test_get_chat_streams_the_reply(relay: Server) -> None:
    with httpx2.stream("GET", f"{relay.url}/chat", params={"message": HELLO}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        received = events(response)
    assert text_of(received) == HELLO_REPLY
    done = json.loads(received[-1].data)
    assert received[-1].event == "done" and done["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] == len(fake_openai.tokenize(HELLO_REPLY))


def test_post_chat_takes_a_conversation(relay: Server) -> None:
    messages = [
        {"role": "system", "content": "2문장 이내로 대답해줘."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": HELLO},
    ]
    with httpx2.stream("POST", f"{relay.url}/chat", json={"messages": messages}) as response:
        assert text_of(events(response)) == HELLO_REPLY
    bad = httpx2.post(f"{relay.url}/chat", json={"messages": [{"role": "robot", "content": ""}]})
    assert bad.status_code == 422


def test_config_and_chat_page(relay: Server, llm: Server) -> None:
    config = httpx2.get(f"{relay.url}/config").json()
    assert config == {
        "upstream": f"the server at {llm.url}/v1", "model": "gpt-4o-mini",
        "heartbeat": 15.0, "timeout": 60.0, "max_retries": 1,
    }  # fmt: skip
    assert type(config["max_retries"]) is int  # a count, not 1.0
    page = httpx2.get(f"{relay.url}/").text
    assert '<script type="module" src="chat.js">' in page  # relative: works behind a proxy
    for name in ("chat.js", "markdown.js", "sse.js"):  # chat.js imports the other two
        script = httpx2.get(f"{relay.url}/{name}")
        assert script.headers["content-type"].startswith("text/javascript"), name
        assert "innerHTML" not in script.text.replace("never innerHTML", ""), name
    assert 'from "./markdown.js"' in httpx2.get(f"{relay.url}/chat.js").text


def test_browser_leaving_cancels_the_upstream(serve: Callable[..., Server]) -> None:
    # 400 tokens at 10 per second: 40 s, unless the relay stops the upstream when we leave.
    env = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "10", "FAKE_OPENAI_TOKENS": "400"}
    slow = serve("server.apps.fake_openai:app", env=env)
    relay = relay_to(serve, slow)

    with httpx2.stream("GET", f"{relay.url}/chat", params={"message": "hi"}) as response:
        pieces = response.iter_bytes()
        assert next(pieces).startswith(b"data: ")  # the first delta has arrived
        assert stats_of(slow)["active"] == 1
        # Leaving the `with` block closes the connection, like a browser tab closing.
    wait_until(lambda: stats_of(slow)["cancelled"] == 1, "the relay to cancel the upstream")
    assert stats_of(slow) | {"requests": 0, "tokens": 0} == {
        "requests": 0, "active": 0, "finished": 0, "cancelled": 1, "failed": 0, "tokens": 0,
    }  # fmt: skip


def test_failure_mid_stream_becomes_an_error_event(serve: Callable[..., Server]) -> None:
    env = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "0", "FAKE_OPENAI_FAIL_AFTER": "3"}
    failing = serve("server.apps.fake_openai:app", env=env)
    relay = relay_to(serve, failing)
    with httpx2.stream("GET", f"{relay.url}/chat", params={"message": HELLO}) as response:
        assert response.status_code == 200
        received = events(response)
    assert [e.event for e in received] == ["message"] * 3 + ["error"]
    assert text_of(received) == "안녕하"
    assert "The reply above is incomplete" in json.loads(received[-1].data)["message"]


def test_rejected_key_is_a_clear_error(serve: Callable[..., Server], llm: Server) -> None:
    relay = relay_to(serve, llm, OPENAI_API_KEY=fake_openai.BAD_KEY)
    with httpx2.stream("GET", f"{relay.url}/chat", params={"message": "hi"}) as response:
        received = events(response)
    assert [e.event for e in received] == ["error"]
    error = json.loads(received[0].data)
    assert error["status"] == 401
    assert "rejected the API key (401). Set OPENAI_API_KEY" in error["message"]


# --- every failure ends the stream with one error event ---------------------------------------

APPS = str(Path(__file__).parent / "apps")


@pytest.fixture(scope="module")
def scripted() -> Iterator[Server]:
    """The relay in front of tests/apps/scripted_llm.py, which misbehaves as the message asks."""
    with start_app("scripted_llm:app", args=["--app-dir", APPS], name="scripted_llm") as llm:
        env = {**NO_DOTENV, "OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test"}
        with start_app("server.apps.llm_relay:app", env=env, name="llm_relay") as server:
            yield server


def relayed(relay: Server, message: str) -> list[Event]:
    with httpx2.stream("GET", f"{relay.url}/chat", params={"message": message}) as response:
        assert response.status_code == 200
        return events(response)


# What the upstream sends after one good delta, and what the error event must say.
UPSTREAM_FAILURES = {
    "not-an-object": "the chunk: expected an object, got an array",
    "a-number": "the chunk: expected an object, got a number",
    "choices-not-a-list": "choices: expected an array, got an object",
    "choice-not-an-object": "choices[0]: expected an object, got a string",
    "delta-not-an-object": "choices[0].delta: expected an object, got a string",
    "content-not-text": "choices[0].delta.content: expected a string, got a number",
    "finish-not-text": "choices[0].finish_reason: expected a string, got a number",
    "usage-not-an-object": "usage: expected an object, got a string",
    "oversized": "an event larger than",
    "no-done": "ended its stream without [DONE]",
    "drop": "Connection error",
    "unpaired-surrogate": "The relay failed (UnicodeEncodeError)",
}


@pytest.mark.parametrize(("script", "says"), UPSTREAM_FAILURES.items(), ids=list(UPSTREAM_FAILURES))
def test_every_upstream_failure_ends_the_stream_with_one_error_event(
    scripted: Server, script: str, says: str
) -> None:
    received = relayed(scripted, script)
    assert [e.event for e in received] == ["message", "error"]
    assert text_of(received) == "안"
    message = json.loads(received[-1].data)["message"]
    assert says in message
    assert message.endswith("The reply above is incomplete.")


def test_the_scripted_upstream_ends_well_when_asked(scripted: Server) -> None:
    received = relayed(scripted, "fine")
    assert [e.event for e in received] == ["message", "done"]
    assert json.loads(received[-1].data)["finish_reason"] == "stop"


def test_without_an_upstream_the_relay_refuses_to_start(serve: Callable[..., Server]) -> None:
    with pytest.raises(LauncherError, match="No LLM to relay: OPENAI_BASE_URL and OPENAI_API_KEY"):
        serve("server.apps.llm_relay:app", env=NO_DOTENV)
    with pytest.raises(LauncherError, match=r"RELAY_HEARTBEAT must be a number from 0\.05 to 3600"):
        serve("server.apps.llm_relay:app", env={**NO_DOTENV, "OPENAI_API_KEY": "sk-x",
                                                "RELAY_HEARTBEAT": "-1"})  # fmt: skip


# --- a slow or silent upstream -----------------------------------------------------------------


def raw_lines(relay: Server, data_events: int) -> list[bytes]:
    """The relay's lines, as sent (comments included), until `data_events` data lines."""
    lines: list[bytes] = []
    with httpx2.stream("GET", f"{relay.url}/chat", params={"message": "hi"}) as response:
        buffer = b""
        for chunk in response.iter_bytes():
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines += [line for line in complete if line]
            if sum(line.startswith(b"data:") for line in lines) >= data_events:
                return lines
    return lines


def test_heartbeats_while_the_model_is_silent(serve: Callable[..., Server]) -> None:
    # 1.5 s before the first token, then 0.5 s between tokens; a heartbeat every 0.1 s.
    slow = serve(
        "server.apps.fake_openai:app", env={"FAKE_OPENAI_TTFT": "1.5", "FAKE_OPENAI_TPS": "2"}
    )
    relay = relay_to(serve, slow, RELAY_HEARTBEAT="0.1")
    lines = raw_lines(relay, data_events=3)
    kinds = [b"data" if line.startswith(b"data:") else line for line in lines]
    assert set(kinds) == {b": ping", b"data"}, lines
    first, third = kinds.index(b"data"), len(kinds) - 1
    assert first >= 1, "no heartbeat before the first token"
    assert b": ping" in kinds[first:third], "no heartbeat between tokens"


def test_a_silent_upstream_times_out_with_an_error_event(serve: Callable[..., Server]) -> None:
    with start_app("scripted_llm:app", args=["--app-dir", APPS], name="scripted_llm") as llm:
        relay = relay_to(serve, llm, RELAY_TIMEOUT="0.5", RELAY_MAX_RETRIES="0")
        received = relayed(relay, "hang")  # one delta, then silence
    assert [e.event for e in received] == ["message", "error"]
    assert "Request timed out." in json.loads(received[-1].data)["message"]


@pytest.mark.parametrize("retries", [0, 2])
def test_the_relay_retries_as_configured(serve: Callable[..., Server], retries: int) -> None:
    env = {"FAKE_OPENAI_STATUS": "429", "FAKE_OPENAI_RETRY_AFTER": "0.01"}
    limited = serve("server.apps.fake_openai:app", env=env)
    relay = relay_to(serve, limited, RELAY_MAX_RETRIES=str(retries))
    received = relayed(relay, "hi")
    assert [e.event for e in received] == ["error"]
    assert json.loads(received[0].data)["status"] == 429
    assert httpx2.get(f"{limited.url}/stats").json()["requests"] == 1 + retries


def test_closing_the_upstream_is_shielded_and_bounded() -> None:
    class Upstream:
        """Stands in for the upstream response: its close takes `seconds`."""

        def __init__(self, seconds: float) -> None:
            self.seconds, self.closed = seconds, False

        async def close(self) -> None:
            await asyncio.sleep(self.seconds)
            self.closed = True

    async def main() -> tuple[bool, bool, float]:
        quick: Any = Upstream(0.01)
        stuck: Any = Upstream(3600)
        with anyio.CancelScope() as scope:
            scope.cancel()  # the stream is being cancelled: the close must still happen
            await close_within(quick, 10)
        started = time.monotonic()
        await close_within(stuck, 0.05)
        return quick.closed, stuck.closed, time.monotonic() - started

    quick_closed, stuck_closed, waited = asyncio.run(main())
    assert quick_closed and not stuck_closed
    assert waited < 10  # the bound held: it did not wait for the stuck close


def test_a_heartbeat_that_starts_late_does_not_break_the_stream() -> None:
    """The heartbeat task may first run after its interval has passed (a slow start, a busy
    loop): its first wait is then already over, which is no reason to end the stream."""
    sent: list[bytes] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(0.1)  # the start goes out late: two heartbeat intervals
        elif message["body"]:
            sent.append(message["body"])

    async def receive() -> Any:
        await asyncio.Event().wait()  # the client never leaves

    async def body() -> AsyncIterator[bytes]:
        await asyncio.sleep(0.2)
        yield b"data: x\n\n"

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}}
    response = HeartbeatResponse(body(), interval=0.05)
    asyncio.run(response(scope, receive, send))
    assert sent[-1] == b"data: x\n\n"
    assert sent[0] == HEARTBEAT, "no heartbeat while the body was silent"


# --- the relay written the obvious way (lesson 06 shows it first) -----------------------------


def plain_events(llm: Server, message: str = HELLO, **headers: str) -> list[Event]:
    """What `plain_chat_events` sends for one message, decoded."""

    async def run() -> list[bytes]:
        client = openai.AsyncOpenAI(
            base_url=f"{llm.url}/v1", api_key=headers.pop("key", "sk-test"),
            default_headers=headers, max_retries=0,
        )  # fmt: skip
        upstream = Upstream(f"{llm.url}/v1", "sk-test", "gpt-4o-mini", "the fake")
        messages = [{"role": "user", "content": message}]
        async with client:
            return [piece async for piece in plain_chat_events(client, upstream, messages)]

    decoder = Decoder()
    return [event for piece in asyncio.run(run()) for event in decoder.feed(piece)]


def test_the_plain_relay_sends_what_the_relay_sends(relay: Server, llm: Server) -> None:
    with httpx2.stream("GET", f"{relay.url}/chat", params={"message": HELLO}) as response:
        fast = events(response)
    plain = plain_events(llm)
    assert [(e.event, json.loads(e.data)) for e in plain] == [
        (e.event, json.loads(e.data)) for e in fast
    ]
    assert text_of(plain) == HELLO_REPLY and plain[-1].event == "done"


def test_the_plain_relay_sends_errors_as_events(llm: Server) -> None:
    broken = plain_events(llm, **{"x-fake-fail-after": "2"})
    assert [e.event for e in broken] == ["message", "message", "error"]
    assert json.loads(broken[-1].data)["status"] is None  # no HTTP status inside a stream
    refused = plain_events(llm, key=fake_openai.BAD_KEY)
    assert [e.event for e in refused] == ["error"]
    assert json.loads(refused[0].data)["status"] == 401


def test_the_plain_relay_stops_the_upstream_when_its_reader_leaves(
    serve: Callable[..., Server],
) -> None:
    env = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "10", "FAKE_OPENAI_TOKENS": "400"}
    slow = serve("server.apps.fake_openai:app", env=env)

    async def read_two_and_leave() -> None:
        client = openai.AsyncOpenAI(base_url=f"{slow.url}/v1", api_key="sk-test")
        upstream = Upstream(f"{slow.url}/v1", "sk-test", "m", "the fake")
        pieces = plain_chat_events(client, upstream, [{"role": "user", "content": "hi"}])
        assert (await anext(pieces)).startswith(b"data: ")
        assert (await anext(pieces)).startswith(b"data: ")
        await pieces.aclose()  # what Starlette's cancellation amounts to
        await client.close()

    asyncio.run(read_two_and_leave())
    wait_until(lambda: stats_of(slow)["cancelled"] == 1, "the plain relay to stop the upstream")
    assert stats_of(slow)["tokens"] < 400


def test_status_of_is_the_http_status_only_api_status_errors_have() -> None:
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    unavailable = httpx2.Response(503, request=request)
    assert status_of(openai.InternalServerError("down", response=unavailable, body=None)) == 503
    assert status_of(openai.APIError("broke mid-stream", request, body=None)) is None
    assert status_of(openai.APITimeoutError(request)) is None


# --- the seeds' /chat, for comparison -----------------------------------------------------------


def test_the_seeds_chat_streams_but_its_model_runs_on_after_the_client_left(
    serve: Callable[..., Server],
) -> None:
    """Lesson 06's claim: a sync generator over a sync client is abandoned on a disconnect,
    and the upstream generation runs to its end. (The relay's: it is cancelled.)"""
    llm = serve(
        "server.apps.fake_openai:app", env={"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "50"}
    )
    env = {**NO_DOTENV, "OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test"}
    seed = serve("server.apps.seed_chat:app", env=env)
    url, hello = f"{seed.url}/sse/chat", {"message": HELLO}
    with httpx2.Client() as client, connect_sse(client, "GET", url, params=hello) as whole:
        assert [e.data for e in whole] == [*fake_openai.tokenize(HELLO_REPLY), "[DONE]"]

    message = "Tell me about SSE"
    full = len(fake_openai.tokenize(fake_openai.reply_for(message)))
    before = stats_of(llm)
    with httpx2.stream("GET", f"{seed.url}/sse/chat", params={"message": message}) as response:
        assert next(response.iter_bytes()).startswith(b"data: ")
    ended = "the abandoned generation to run to its end"
    wait_until(lambda: stats_of(llm)["active"] == before["active"], ended)
    after = stats_of(llm)
    assert after["finished"] - before["finished"] == 1 and after["cancelled"] == before["cancelled"]
    assert after["tokens"] - before["tokens"] == full  # every token, for a client long gone


# --- lesson 06's real-model cell -----------------------------------------------------------------

LESSON = Path(__file__).parent.parent / "solutions" / "06_llm_streaming.ipynb"
REAL_MODEL_CELL = "c9bc8693"


def run_real_model_cell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> str:
    """Run the lesson's last cell, which measures a real model when one is configured, with
    only `env` configured (no ``.env`` file), and return what it printed."""
    cells = nbformat.read(LESSON, as_version=4).cells
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # no .env here, nor above
    namespace: dict[str, Any] = {"PROMPT": HELLO}
    exec(cells[1].source, namespace)  # the lesson's imports
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(next(c.source for c in cells if c.get("id") == REAL_MODEL_CELL), namespace)
    return printed.getvalue()


def test_the_real_model_cell_measures_a_server_named_by_its_base_url_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, llm: Server
) -> None:
    """Ollama and vLLM need only OPENAI_BASE_URL: the cell must measure them, not say that
    no key is configured."""
    before = httpx2.get(f"{llm.url}/stats").json()["requests"]
    printed = run_real_model_cell(monkeypatch, tmp_path, OPENAI_BASE_URL=f"{llm.url}/v1")
    assert "first token after" in printed and f"{llm.url}/v1" in printed, printed
    assert httpx2.get(f"{llm.url}/stats").json()["requests"] == before + 1


def test_the_real_model_cell_without_a_model_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    printed = run_real_model_cell(monkeypatch, tmp_path)
    assert "OPENAI_BASE_URL" in printed and "OPENAI_API_KEY" in printed, printed
    assert "first token after" not in printed
