"""Lesson 12's MCP server (official SDK) against a real server: answers, priming, resume, scope."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx2
import pytest
from mcp import Client

from server.apps.mcp_server import LIFTOFF, RETRY_MS
from server.course.launcher import start_app
from server.course.mcp_checks import test_call_to_the_end as check_call_to_the_end
from server.course.mcp_checks import test_progress_values as check_progress_values
from server.course.mcp_wire import (
    Request,
    call,
    call_to_the_end,
    open_session,
    post,
    progress_values,
    resume,
    session_call,
)
from server.sse import Decoder

T = TypeVar("T")


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with start_app("server.apps.mcp_server:app", ready_path="/mcp") as server:
        yield f"{server.url}/mcp"


def run(test: Callable[[httpx2.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx2.AsyncClient(timeout=30) as client:
            return await test(client)

    return asyncio.run(main())


def progress_of(messages: list[Any]) -> list[float]:
    notes = [m for m in messages if m.get("method") == "notifications/progress"]
    return [m["params"]["progress"] for m in notes]


def text_of(message: Any) -> str:
    text: str = message["result"]["content"][0]["text"]
    return text


def test_a_quick_call_is_answered_as_json(mcp_url: str) -> None:
    answer = run(lambda client: post(client, mcp_url, call("add", {"a": 2, "b": 3})))
    assert (answer.status, answer.media_type) == (200, "application/json")
    assert answer.message["result"]["content"] == [{"type": "text", "text": "5"}]


def test_a_call_that_reports_progress_is_an_event_stream_that_ends_with_the_result(
    mcp_url: str,
) -> None:
    request = call("count_down", {"n": 4}, progress_token="p")
    answer = run(lambda client: post(client, mcp_url, request))
    assert (answer.status, answer.media_type) == (200, "text/event-stream")
    assert progress_of(answer.messages) == [1, 2, 3, 4]
    assert text_of(answer.messages[-1]) == LIFTOFF
    assert len(answer.messages) == 5  # four notifications, the result, and the stream ended
    assert all(event.id == "" for event in answer.events)  # 2026-07-28: no ids to resume by
    assert answer.headers["x-accel-buffering"] == "no"


@pytest.mark.parametrize(
    "accept", [None, "application/json", "text/event-stream"], ids=["none", "json", "sse"]
)
def test_a_post_that_does_not_accept_both_answers_is_a_406(
    mcp_url: str, accept: str | None
) -> None:
    async def send(client: httpx2.AsyncClient) -> tuple[int, int]:
        client.headers.pop("Accept", None)  # httpx2 sends */* unless told otherwise
        modern = call("add", {"a": 1, "b": 1})
        legacy = Request({"jsonrpc": "2.0", "id": 0, "method": "ping"}, {})
        statuses = []
        for request in (modern, legacy):
            headers = {k: v for k, v in request.headers.items() if k != "Accept"}
            if accept is not None:
                headers["Accept"] = accept
            statuses.append((await post(client, mcp_url, Request(request.body, headers))).status)
        return statuses[0], statuses[1]

    assert run(send) == (406, 406)


def test_httpx2s_default_accept_of_anything_is_enough(mcp_url: str) -> None:
    request = call("add", {"a": 1, "b": 1})
    headers = {k: v for k, v in request.headers.items() if k != "Accept"}
    answer = run(lambda client: post(client, mcp_url, Request(request.body, headers)))
    assert answer.status == 200  # Accept: */* matches both types (RFC 9110 wildcards)


def test_a_2025_11_25_stream_starts_with_a_priming_event_and_older_clients_get_none(
    mcp_url: str,
) -> None:
    async def first_events(client: httpx2.AsyncClient, version: str) -> list[Any]:
        session = await open_session(client, mcp_url, version=version)
        answer = await post(client, mcp_url, session_call(session, "add", {"a": 1, "b": 2}))
        return answer.events

    new = run(lambda client: first_events(client, "2025-11-25"))
    assert (new[0].data, new[0].retry) == ("", RETRY_MS) and new[0].id
    assert new[1].id and new[1].id != new[0].id
    old = run(lambda client: first_events(client, "2025-06-18"))
    assert old[0].data and old[0].retry is None  # 2025-06-18 clients could not parse it


def test_a_stream_cut_mid_call_resumes_with_last_event_id(mcp_url: str) -> None:
    async def cut_and_resume(client: httpx2.AsyncClient) -> tuple[list[Any], list[Any]]:
        session = await open_session(client, mcp_url)
        cut = session_call(session, "count_down", {"n": 5, "close_after": 2}, progress_token=1)
        before = await post(client, mcp_url, cut)
        after = await resume(client, mcp_url, session, before.last_event_id)
        return before.messages, after.messages

    before, after = run(cut_and_resume)
    assert "result" not in before[-1]  # the server closed the stream before the result
    assert progress_of(before + after) == [1, 2, 3, 4, 5]  # each once, in order
    assert text_of(after[-1]) == LIFTOFF


def test_a_replay_reaches_only_the_session_that_owns_the_stream(mcp_url: str) -> None:
    """Two sessions use the same request id; each cut stream is asked for by both."""

    async def two_sessions(client: httpx2.AsyncClient) -> dict[str, list[Any]]:
        alice = await open_session(client, mcp_url)
        bob = await open_session(client, mcp_url)
        cuts = await asyncio.gather(
            *(
                post(client, mcp_url, session_call(who, "count_down", args, progress_token=token))
                for who, args, token in (
                    (alice, {"n": 3, "close_after": 1}, "alice"),
                    (bob, {"n": 4, "close_after": 1}, "bob"),
                )
            )
        )
        a_id, b_id = (answer.last_event_id for answer in cuts)
        return {
            "bob asks for alice's": (await resume(client, mcp_url, bob, a_id)).messages,
            "alice asks for bob's": (await resume(client, mcp_url, alice, b_id)).messages,
            "alice's own": cuts[0].messages + (await resume(client, mcp_url, alice, a_id)).messages,
            "bob's own": cuts[1].messages + (await resume(client, mcp_url, bob, b_id)).messages,
        }

    got = run(two_sessions)
    assert got["bob asks for alice's"] == [] and got["alice asks for bob's"] == []
    tokens = {who: {m["params"]["progressToken"] for m in got[who] if "params" in m} for who in got}
    assert tokens["alice's own"] == {"alice"} and progress_of(got["alice's own"]) == [1, 2, 3]
    assert tokens["bob's own"] == {"bob"} and progress_of(got["bob's own"]) == [1, 2, 3, 4]


def test_an_unknown_or_malformed_last_event_id_gets_nothing(mcp_url: str) -> None:
    async def ask(client: httpx2.AsyncClient) -> list[list[Any]]:
        session = await open_session(client, mcp_url)
        ids = ["nope", "0:0", "abc:", "::1"]
        return [(await resume(client, mcp_url, session, i)).messages for i in ids]

    assert run(ask) == [[], [], [], []]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_the_sdk_client_gets_every_progress_and_the_result_across_a_cut(
    mcp_url: str, mode: str
) -> None:
    async def use_sdk() -> tuple[list[float], str]:
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        async with Client(mcp_url, mode=mode) as client:
            args = {"n": 5, "close_after": 2}
            result = await client.call_tool("count_down", args, progress_callback=on_progress)
        return seen, "".join(getattr(part, "text", "") for part in result.content)

    assert asyncio.run(use_sdk()) == ([1, 2, 3, 4, 5], LIFTOFF)


def test_importing_the_app_leaves_the_importers_logging_alone() -> None:
    """The SDK's MCPServer() calls logging.basicConfig; a notebook then printed every request."""
    code = (
        "import logging; from server.apps import mcp_server; "
        "root = logging.getLogger(); print(len(root.handlers), root.level)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", str(logging.WARNING)]


def test_the_exercise_check_passes_the_reference_and_fails_json_on_every_event(
    mcp_url: str,
) -> None:
    def every_event_is_json(body: bytes) -> list[float]:
        messages = [json.loads(event.data) for event in Decoder().feed(body)]
        return [m["params"]["progress"] for m in messages if "progress" in m.get("params", {})]

    asyncio.run(check_progress_values(progress_values, mcp_url))
    with pytest.raises(json.JSONDecodeError):  # the priming event's empty data
        asyncio.run(check_progress_values(every_event_is_json, mcp_url))


def test_the_resume_check_passes_the_reference_and_fails_a_resume_without_the_wait(
    mcp_url: str,
) -> None:
    async def no_wait(
        client: httpx2.AsyncClient, url: str, session: dict[str, str], request: Request
    ) -> list[Any]:
        answer = await post(client, url, request)
        if any("result" in m for m in answer.messages):
            return answer.messages
        rest = await resume(client, url, session, answer.last_event_id)
        return answer.messages + rest.messages

    asyncio.run(check_call_to_the_end(call_to_the_end, mcp_url, RETRY_MS))
    with pytest.raises(AssertionError, match="retry"):
        asyncio.run(check_call_to_the_end(no_wait, mcp_url, RETRY_MS))
