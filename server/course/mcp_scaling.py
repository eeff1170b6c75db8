"""MCP's three HTTP shapes on lesson 09's cluster (nginx, two workers, Redis), counted.

Lesson 12 claims that each revision of MCP's HTTP transport changed what a deployment with
several workers can do. This runs the same tool call (`count`: `steps` progress notifications,
then a result) many times through nginx in front of two uvicorn workers, and counts outcomes:

1. 2024-11-05 "HTTP with SSE" (`server.apps.mcp_legacy`, historical), round robin: the GET
   stream and the POSTs of one call land on different workers, and a POST that finds no
   session is a 404. (It runs with the course's own client: the SDK's `sse_client` logs that
   404 and leaves the call waiting until its read timeout.)
2. The session era (2025-03-26 to 2025-11-25; the SDK's client with `mode="legacy"` speaks
   2025-11-25) against `server.apps.mcp_cluster`: plain round robin loses sessions the same
   way, and so does `hash $http_mcp_session_id` (the bench's extra row); nginx routing on the
   worker's name in `Mcp-Session-Id` (`route_on_session`) works; then worker A is SIGKILLed
   mid-call and the calls it held fail: the session was in its memory. (That era's resumption
   with `Last-Event-ID` would need the same session, on the same dead worker.)
3. Sessionless (2026-07-28, `mode="2026-07-28"`), plain round robin, the same kill. The
   2026-07-28 changelog: "A broken response stream loses the in-flight request; clients MUST
   re-issue it as a new request with a new request ID." The client here re-issues `count` when
   the SDK reports the stream closed without an answer (code CONNECTION_CLOSED), up to
   `MAX_ATTEMPTS` attempts in all, and nothing else; the job's step lives in Redis under a
   handle from `new_job`, so the re-issued call goes on from there on the other worker. nginx
   may pass a POST on to the other worker too (`RETRY_POSTS`).

The kill is deterministic: while the Redis key `HOLD` exists, every `count` waits after each
step; the run sets it, SIGKILLs worker A by pid once every call has received its first
progress notification, then deletes it. So every call is in flight at the kill, however
loaded the machine. Nothing here is timed; `bench/bench_mcp_workers.py` runs it with more
calls and writes the counts as JSON.

    tallies = await scaling_run(calls=8)
    print(scaling_table(tallies))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import redis.asyncio as aioredis

from server.clients.measure import format_table
from server.course.cluster import start_workers, upstreams
from server.course.launcher import SSE_PROXY, Server, start_nginx, start_redis
from server.course.mcp_calls import (
    CALL_DEADLINE,
    SESSION_ERA,
    SESSIONLESS,
    Call,
    One,
    RunSignals,
    historical_call,
    sdk_call,
)

LEGACY_APP = "server.apps.mcp_legacy:app"
CLUSTER_APP = "server.apps.mcp_cluster:app"
# The Redis key `server.apps.mcp_cluster.held` waits on (not imported from there: building that
# app's MCPServer sets up the root logger, which would then print every HTTP request here).
HOLD = "mcp:hold"


def route_on_session(workers: dict[str, Server]) -> tuple[str, str]:
    """nginx `http` and `server` directives that send `/mcp` to the worker named in the session id.

    `server.apps.mcp_cluster` mints ids like `A.3f2c...`. A request without one (`initialize`,
    or any sessionless POST) goes to the round-robin upstream `app`. Why not
    `hash $http_mcp_session_id`: the hash picks a worker from the id alone, which need not be
    the worker that minted it during `initialize` (sent before there was any id).
    """
    names = "\n".join(f'    "~^{name}\\." mcp_{name};' for name in workers)
    blocks = "\n".join(
        f"upstream mcp_{name} {{ server {upstreams([server])[0]}; keepalive 8; }}"
        for name, server in workers.items()
    )
    http = f"map $http_mcp_session_id $mcp_upstream {{\n{names}\n    default app;\n}}\n{blocks}"
    location = "\n".join(
        [
            "location /mcp {",
            "proxy_pass http://$mcp_upstream;",
            "proxy_set_header Host $host;",
            SSE_PROXY,
            "}",
        ]
    )
    return http, location


@dataclass
class Tally:
    """The calls of one row of the table: a shape, how nginx balanced it, what was killed."""

    shape: str
    balancing: str
    killed: str
    calls: list[Call]

    def row(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "nginx": self.balancing,
            "SIGKILL": self.killed,
            "calls": len(self.calls),
            "completed": sum(c.completed for c in self.calls),
            "failed": sum(not c.completed for c in self.calls),
            "re-issued": sum(c.attempts - 1 for c in self.calls if c.attempts > 1),
        }

    def problems(self) -> list[str]:
        """The distinct reasons calls failed, for a claim's evidence."""
        return sorted({c.problem for c in self.calls if c.problem})


def scaling_table(tallies: list[Tally]) -> str:
    return format_table([t.row() for t in tallies])


async def run_rows(
    rows: list[tuple[int, One, bool]],
    kill: Server | None = None,
    release: Callable[[], Awaitable[object]] | None = None,
) -> list[list[Call]]:
    """Rows of (calls, how to make one, same turn), all at once; with `kill`, SIGKILL it once
    every call of every row has had its first progress notification, then `release` them."""
    everyone_started = asyncio.Event()
    waiting = sum(calls for calls, _, _ in rows)

    def first_progress() -> None:
        nonlocal waiting
        waiting -= 1
        if waiting == 0:
            everyone_started.set()

    tasks = []
    for calls, one, same_turn in rows:
        run = RunSignals(calls, first_progress, same_turn)
        tasks.append(asyncio.gather(*(one(run) for _ in range(calls))))
    if kill is not None:
        try:
            await asyncio.wait_for(everyone_started.wait(), CALL_DEADLINE)
        except TimeoutError:
            seen = [c for row in await asyncio.gather(*tasks) for c in row]  # each has a deadline
            reasons = sorted({c.problem or "no progress" for c in seen})
            problem = f"not every call reported progress, nothing killed: {reasons}"
            raise RuntimeError(problem) from None
        await asyncio.to_thread(kill.kill)
        if release is not None:
            await release()
    return [list(row) for row in await asyncio.gather(*tasks)]


async def run_calls(calls: int, one: One) -> list[Call]:
    """`calls` calls at once."""
    [row] = await run_rows([(calls, one, False)])
    return row


# nginx passes a POST on to the other worker only if it could not send it to the first
# (`non_idempotent`: by default never, once the request has gone out on a kept-alive connection
# to a worker that has just died, which then is a 502). `count` may run twice: its job handle
# makes that harmless, as a re-issue by the client must be anyway.
RETRY_POSTS = SSE_PROXY + "\nproxy_next_upstream error timeout non_idempotent;"


HASH_SESSION_ID = "hash $http_mcp_session_id consistent;"


@contextmanager
def mcp_clusters(step_seconds: float) -> Iterator[tuple[dict[str, Server], dict[str, Server]]]:
    """Redis, two workers of each app, and the nginx each row needs; all stopped at the end.

    Yields (servers, proxies): the MCP workers "A" and "B" and "redis"; the proxies "legacy"
    (round robin over two `mcp_legacy` workers), "round robin", "routed" and "hashed" (all
    three in front of A and B).
    """
    env = {"MCP_STEP_SECONDS": str(step_seconds)}
    with ExitStack() as servers:
        redis = servers.enter_context(start_redis())
        with ThreadPoolExecutor(max_workers=2) as pool:
            legacy_start = pool.submit(start_workers, LEGACY_APP, "AB", env=env)
            mcp_start = pool.submit(
                start_workers, CLUSTER_APP, "AB", env={**env, "REDIS_URL": redis.url}
            )
            legacy, workers = legacy_start.result(), mcp_start.result()
        for server in [*legacy.values(), *workers.values()]:
            servers.enter_context(server)
        http, location = route_on_session(workers)
        proxies = {
            "legacy": start_nginx(upstreams(legacy)),
            "round robin": start_nginx(upstreams(workers), location=RETRY_POSTS),
            "routed": start_nginx(upstreams(workers), http=http, server=location),
            "hashed": start_nginx(upstreams(workers), upstream=HASH_SESSION_ID),
        }
        for server in proxies.values():
            servers.enter_context(server)
        yield {**workers, "redis": redis}, proxies


@contextmanager
def quiet_sdk() -> Iterator[None]:
    """Keep the SDK's warnings about dead sessions ("Session termination failed: 502") out of
    the output: the table counts them."""
    logger = logging.getLogger("mcp")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


async def scaling_run(
    calls: int = 8,
    steps: int = 10,
    step_seconds: float = 0.1,
    *,
    together: int = 1,
    per_kill: int | None = None,
    hashed: bool = False,
) -> list[Tally]:
    """Lesson 12's table: five rows (six with `hashed`) of `calls` calls each (`calls` even).

    The round-robin and hash rows run `together` calls at a time (by default one: round robin
    then alternates strictly, so every call meets it the same way). The routed rows run
    `per_kill` calls at a time (by default all), and the two kill rows run together, so that
    one SIGKILL finds both in flight (worker A is restarted before each next batch). `hashed`
    adds nginx's `hash $http_mcp_session_id consistent` (its counts vary from run to run)."""
    with mcp_clusters(step_seconds) as (workers, proxies), quiet_sdk():
        redis = aioredis.Redis.from_url(workers["redis"].url)

        async def historical(run: RunSignals) -> Call:
            async with httpx2.AsyncClient(timeout=CALL_DEADLINE) as client:
                return await historical_call(client, proxies["legacy"].url, steps)

        def sdk(proxy: str, mode: str) -> One:
            url = proxies[proxy].url
            return lambda run: sdk_call(url, mode, steps, run)

        async def batches(one: One, size: int = together) -> list[Call]:
            return [c for _ in range(calls // size) for c in await run_calls(size, one)]

        old = await batches(historical)
        plain = await batches(sdk("round robin", SESSION_ERA))
        tallies = [
            Tally("2024-11-05 HTTP+SSE", "round robin", "", old),
            Tally("2025-11-25 sessions", "round robin", "", plain),
        ]
        if hashed:
            hashing = await batches(sdk("hashed", SESSION_ERA))
            tallies.append(Tally("2025-11-25 sessions", "hash of session id", "", hashing))
        batch = per_kill or calls
        routed = await batches(sdk("routed", SESSION_ERA), batch)
        # Both kill rows in flight together, held after their first step (`mcp_cluster.held`),
        # and one SIGKILL for both; `per_kill` calls a row at a time, A restarted in between.
        routed_kill: list[Call] = []
        sessionless: list[Call] = []
        for n in range(calls // batch):
            if n:
                await asyncio.to_thread(workers["A"].restart)
            await redis.set(HOLD, 1)
            session_era, modern = await run_rows(
                [
                    (batch, sdk("routed", SESSION_ERA), False),
                    (batch, sdk("round robin", SESSIONLESS), True),
                ],
                kill=workers["A"],
                release=lambda: redis.delete(HOLD),
            )
            routed_kill += session_era
            sessionless += modern
        await redis.aclose()
    return [
        *tallies,
        Tally("2025-11-25 sessions", "on session id", "", routed),
        Tally("2025-11-25 sessions", "on session id", "A mid-call", routed_kill),
        Tally("2026-07-28 sessionless", "round robin", "A mid-call", sessionless),
    ]
