"""Lesson 12's exercise checks, against the lesson's real MCP server.

`test_call_to_the_end(fn, url)` makes two session-era calls through the learner's
``call_to_the_end``: one the server cuts after two reports (``close_after``), which must be
resumed, after the priming event's ``retry``, to all five reports and the result; and one that
is not cut, which must come back as it is.

`test_progress_values(fn, url)` asks the lesson's MCP server (`server.apps.mcp_server`) for
three answers and hands their bytes to the learner's ``progress_values``: a 2026-07-28 stream
(no ids, CRLF line ends), a 2025-11-25 stream that opens with a priming event (an id and empty
data, which ``json.loads`` cannot read), and a JSON answer that is no stream at all.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2

from server.course.mcp_wire import Request, call, open_session, post, session_call

__all__ = ["test_call_to_the_end", "test_progress_values"]

Resumer = Callable[[httpx2.AsyncClient, str, dict[str, str], Request], Awaitable[list[Any]]]


async def test_progress_values(fn: Callable[[bytes], list[float]], url: str) -> None:
    """Assert `fn` returns the progress values of each answer, in order."""
    async with httpx2.AsyncClient(timeout=30) as client:
        modern = await post(client, url, call("count_down", {"n": 3}, progress_token="a"))
        quick = await post(client, url, call("add", {"a": 1, "b": 2}))
        session = await open_session(client, url)
        primed = session_call(session, "count_down", {"n": 4}, progress_token="b")
        legacy = await post(client, url, primed)
    got = fn(modern.raw)
    assert got == [1, 2, 3], f"a 2026-07-28 stream of 3 progress reports: got {got}"
    got = fn(legacy.raw)
    assert got == [1, 2, 3, 4], (
        f"a 2025-11-25 stream whose first event has empty data (priming): got {got}"
    )
    got = fn(quick.raw)
    assert got == [], f"a JSON answer (no event stream) has no progress: got {got}"


async def test_call_to_the_end(fn: Resumer, url: str, retry_ms: int) -> None:
    """Assert `fn` resumes a cut call to its result, waiting `retry_ms` first."""
    async with httpx2.AsyncClient(timeout=30) as client:
        session = await open_session(client, url)
        whole = session_call(session, "count_down", {"n": 2}, progress_token="w")
        got = await fn(client, url, session, whole)
        assert _progress(got) == [1, 2] and _text(got[-1]) == "발사!", (
            f"a call that is not cut: its two reports and the result, got {got}"
        )
        cut = session_call(
            session, "count_down", {"n": 5, "close_after": 2}, request_id=2, progress_token="c"
        )
        started = time.perf_counter()
        got = await fn(client, url, session, cut)
        took = time.perf_counter() - started
    assert got and _text(got[-1]) == "발사!", "the last message must be the call's result"
    assert _progress(got) == [1, 2, 3, 4, 5], (
        f"each report once, in order, across the cut: got {_progress(got)}"
    )
    assert took >= retry_ms / 1000, (
        f"the stream asked for retry: {retry_ms} ms; you resumed after {took * 1000:.0f} ms"
    )


def _progress(messages: list[Any]) -> list[float]:
    notes = [m for m in messages if m.get("method") == "notifications/progress"]
    return [note["params"]["progress"] for note in notes]


def _text(message: Any) -> str:
    return str(message.get("result", {}).get("content", [{}])[0].get("text"))
