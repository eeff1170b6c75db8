"""Lesson 12's exercise check: read progress from real MCP answers with the course's decoder.

`test_progress_values(fn, url)` asks the lesson's MCP server (`server.apps.mcp_server`) for
three answers and hands their bytes to the learner's ``progress_values``: a 2026-07-28 stream
(no ids, CRLF line ends), a 2025-11-25 stream that opens with a priming event (an id and empty
data, which ``json.loads`` cannot read), and a JSON answer that is no stream at all.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx2

from server.course.mcp_wire import call, open_session, post, session_call

__all__ = ["test_progress_values"]


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
