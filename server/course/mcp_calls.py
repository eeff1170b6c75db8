"""One MCP tool call per transport shape, as its client sees it (lesson 12's scaling table).

`historical_call` speaks the 2024-11-05 "HTTP with SSE" transport with the course's own SSE
client (the SDK's `sse_client` logs a 404 and leaves the call waiting until its read timeout);
`sdk_call` uses the official client, in the session era (`mode="legacy"`, 2025-11-25) or
sessionless (2026-07-28), where a call whose stream is cut is re-issued as a new request, as the
2026-07-28 changelog requires ("clients MUST re-issue it as a new request with a new request
ID"), at most `MAX_ATTEMPTS` times in all. `server.course.mcp_scaling` runs them by the hundred.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, TextContent

from server.clients.sse_client import aconnect_sse

SESSION_ERA = "legacy"  # the SDK's mode name for the initialize handshake (2025-11-25)
SESSIONLESS = "2026-07-28"
MAX_ATTEMPTS = 3  # one call and at most two re-issues
CALL_DEADLINE = 60.0  # seconds one call may take, re-issues included (a loaded machine is slow)


@dataclass
class Call:
    """One tool call as its client saw it."""

    progress: list[float] = field(default_factory=list)
    worker: str | None = None  # the worker that sent the first progress notification
    attempts: int = 0
    result: str | None = None
    problem: str | None = None

    @property
    def completed(self) -> bool:
        return self.result is not None

    @property
    def in_order(self) -> bool:
        """Progress only went up (a re-issued call may skip a step, never repeat one)."""
        return all(a < b for a, b in zip(self.progress, self.progress[1:], strict=False))


async def historical_call(client: httpx2.AsyncClient, url: str, steps: int) -> Call:
    """One 2024-11-05 call: GET /sse, POST initialize, initialized and tools/call, read answers."""
    call = Call(attempts=1)
    messages: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "count",
                "arguments": {"steps": steps},
                "_meta": {"progressToken": 1},
            },
        },
    ]
    async with aconnect_sse(client, "GET", f"{url}/sse") as stream:
        events = aiter(stream)
        endpoint = (await anext(events)).data
        for message in messages:
            answer = await client.post(f"{url}{endpoint}", json=message)
            if answer.status_code != 202:
                said = answer.text.replace(endpoint.rpartition("=")[2], "<id>")
                call.problem = f"{answer.status_code} for {message['method']}: {said}"
                return call
        async for event in events:
            reply = json.loads(event.data)
            if reply.get("method") == "notifications/progress":
                call.progress.append(reply["params"]["progress"])
            elif reply.get("id") == 2:
                call.result = reply["result"]["content"][0]["text"]
                return call
    call.problem = "the stream ended before the answer"
    return call


async def sdk_call(url: str, mode: str, steps: int, run: RunSignals) -> Call:
    """One `count` call with the official client; re-issued after a cut stream when sessionless."""
    call = Call()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        call.progress.append(progress)
        if call.worker is None:
            call.worker = (message or "").removeprefix("worker ")
            run.first_progress()

    stage = "connecting"
    try:
        with anyio.fail_after(CALL_DEADLINE):
            async with Client(f"{url}/mcp", mode=mode) as client:
                stage = "new_job"
                job = _text(await client.call_tool("new_job", {}))
                if run.jobs is not None:
                    stage = "waiting for the other calls' jobs"
                    await run.jobs.wait()
                arguments = {"job": job, "steps": steps}
                while call.result is None:
                    call.attempts += 1
                    stage = f"count, attempt {call.attempts}"
                    try:
                        result = await client.call_tool(
                            "count", arguments, progress_callback=on_progress
                        )
                    except MCPError as error:
                        cut = error.error.code == CONNECTION_CLOSED
                        if not (cut and mode == SESSIONLESS and call.attempts < MAX_ATTEMPTS):
                            raise
                    else:
                        if result.is_error:
                            raise RuntimeError(_text(result))
                        call.result = _text(result)
    except Exception as error:  # the outcome to count, whatever it was
        call.problem = _reason(error) + ("" if call.result else f" ({stage})")
        if run.jobs is not None:
            await run.jobs.abort()  # the others are not to wait for this one's job
    return call


def _reason(error: BaseException) -> str:
    """The innermost error, named (the SDK's task groups wrap it in ExceptionGroups)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"[:100]


def _text(result: Any) -> str:
    content = result.content[0]
    return content.text if isinstance(content, TextContent) else repr(content)


class RunSignals:
    """What the calls of one row share: with `same_turn`, all wait for every job handle before
    counting, so that the counts start on the same round-robin turn in every run; and each
    says when its first progress notification arrives (`first_progress`)."""

    def __init__(self, calls: int, first_progress: Callable[[], None], same_turn: bool) -> None:
        self.jobs = asyncio.Barrier(calls) if same_turn else None
        self.first_progress = first_progress


One = Callable[[RunSignals], Awaitable[Call]]
