"""MCP's three HTTP shapes on two workers behind nginx (lesson 12, `server.course.mcp_scaling`).

One run of the five rows (8 calls each) is shared by the outcome tests; the bad-input tests
start one worker of each app on its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from mcp import Client

from server.clients.sse_client import aconnect_sse
from server.course import mcp_scaling
from server.course.launcher import Server
from server.course.mcp_scaling import Tally, scaling_run

pytestmark = [pytest.mark.nginx, pytest.mark.redis]
CALLS = 8
STEPS = 10


@pytest.fixture(scope="module")
def rows() -> Iterator[dict[str, Tally]]:
    tallies = asyncio.run(scaling_run(calls=CALLS, steps=STEPS, step_seconds=0.05))
    yield {f"{t.shape}, {t.balancing}, {t.killed or 'no kill'}": t for t in tallies}


def test_historical_round_robin_sends_every_post_to_the_wrong_worker(
    rows: dict[str, Tally],
) -> None:
    old = rows["2024-11-05 HTTP+SSE, round robin, no kill"]
    assert old.row()["failed"] == CALLS, old.problems()
    assert all(p.startswith("404 for initialize: no session") for p in old.problems())


def test_session_era_round_robin_loses_the_session(rows: dict[str, Tally]) -> None:
    plain = rows["2025-11-25 sessions, round robin, no kill"]
    assert plain.row()["failed"] == CALLS
    assert all(p.startswith("MCPError: Session not found (") for p in plain.problems())


def test_routing_on_the_session_id_completes_every_call_on_both_workers(
    rows: dict[str, Tally],
) -> None:
    routed = rows["2025-11-25 sessions, on session id, no kill"]
    assert routed.row()["completed"] == CALLS, routed.problems()
    assert all(c.progress == list(range(1, STEPS + 1)) for c in routed.calls)
    assert {c.worker for c in routed.calls} == {"A", "B"}


def test_a_killed_worker_takes_its_sessions_calls_with_it(rows: dict[str, Tally]) -> None:
    killed = rows["2025-11-25 sessions, on session id, A mid-call"]
    on_a = [c for c in killed.calls if c.worker == "A"]
    on_b = [c for c in killed.calls if c.worker == "B"]
    assert on_a and on_b
    assert not any(c.completed for c in on_a)
    stream_ended = "MCPError: SSE stream ended without a response (count, attempt 1)"
    assert {c.problem for c in on_a} == {stream_ended}
    assert all(c.completed and c.attempts == 1 for c in on_b), killed.problems()


def test_sessionless_completes_every_call_through_the_kill(rows: dict[str, Tally]) -> None:
    sessionless = rows["2026-07-28 sessionless, round robin, A mid-call"]
    row = sessionless.row()
    assert row["completed"] == CALLS, sessionless.problems()
    assert row["re-issued"] >= 1  # the kill did cut calls: each one was re-issued and finished
    assert all(c.in_order and c.progress[-1] == STEPS for c in sessionless.calls)
    assert all((c.result or "").endswith("worker B") for c in sessionless.calls if c.attempts > 1)


def test_the_run_holds_calls_on_the_key_the_workers_wait_on() -> None:
    from server.apps import mcp_cluster

    assert mcp_scaling.HOLD == mcp_cluster.HOLD


@pytest.fixture
def legacy(serve: Callable[..., Server]) -> Server:
    return serve("server.apps.mcp_legacy:app", env={"MCP_STEP_SECONDS": "0"})


async def post_to_session(url: str, body: bytes) -> tuple[httpx2.Response, dict[str, Any]]:
    """Open a 2024-11-05 session and POST `body`: the answer, and the next message streamed."""
    async with (
        httpx2.AsyncClient(timeout=30) as client,
        aconnect_sse(client, "GET", f"{url}/sse") as stream,
    ):
        events = aiter(stream)  # held: dropping it closes the stream, and with it the session
        endpoint = (await anext(events)).data
        headers = {"Content-Type": "application/json"}
        answer = await client.post(f"{url}{endpoint}", content=body, headers=headers)
        if answer.status_code != 202:
            return answer, {}
        return answer, json.loads((await anext(events)).data)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"{not json", "JSON"),
        (b"[1, 2]", '"method" string'),
        (b'{"method": 3}', '"method" string'),
    ],
)
def test_historical_server_refuses_a_bad_message_with_a_400(
    legacy: Server, body: bytes, says: str
) -> None:
    answer, _ = asyncio.run(post_to_session(legacy.url, body))
    assert answer.status_code == 400, answer.text
    assert says in answer.text


def test_historical_server_names_a_missing_session(legacy: Server) -> None:
    answer = httpx2.post(f"{legacy.url}/messages?session_id=nope", json={"method": "ping"})
    assert answer.status_code == 404
    assert "no session 'nope'" in answer.text


def test_historical_server_answers_bad_steps_with_a_jsonrpc_error(legacy: Server) -> None:
    params = {"name": "count", "arguments": {"steps": "ten"}}
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    answer, reply = asyncio.run(post_to_session(legacy.url, json.dumps(message).encode()))
    assert answer.status_code == 202
    assert reply == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": -32602,
            "message": "arguments.steps must be a whole number from 1 to 1000",
        },
    }


def test_cluster_tool_says_what_is_wrong_with_a_job_or_steps(
    serve: Callable[..., Server], redis: Server
) -> None:
    worker = serve("server.apps.mcp_cluster:app", env={"REDIS_URL": redis.url})

    async def calls() -> list[str]:
        async with Client(f"{worker.url}/mcp", mode="2026-07-28") as client:
            job = (await client.call_tool("new_job", {})).content[0]
            texts = []
            for arguments in ({"job": "nope", "steps": 3}, {"job": job.text, "steps": 0}):  # type: ignore[union-attr]
                result = await client.call_tool("count", arguments)
                assert result.is_error
                texts.append(result.content[0].text)  # type: ignore[union-attr]
            return texts

    unknown, zero = asyncio.run(calls())
    assert "unknown job 'nope': get a handle from new_job first" in unknown
    assert "steps must be from 1 to 1000, not 0" in zero
