"""Waiting for a learner's server to show something, with a deadline: never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from server.course.launcher import Server

POLL = 0.02


def log_count(server: Server, text: str) -> int:
    """How many lines of the server's log contain `text`."""
    return sum(text in line for line in server.log_tail(100_000).splitlines())


async def wait_for_log(server: Server, text: str, count: int, *, within: float) -> bool:
    """True once the log holds `count` lines with `text`; False after `within` seconds."""
    return await wait_until(lambda: log_count(server, text) >= count, within=within)


async def wait_until(condition: Callable[[], object], *, within: float) -> bool:
    """Poll `condition` until it holds (True) or `within` seconds pass (False)."""
    return await seconds_until(condition, within=within) is not None


async def seconds_until(condition: Callable[[], object], *, within: float) -> float | None:
    """Poll `condition`: the seconds it took to hold, or None if it did not within `within`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            return None
        await asyncio.sleep(POLL)
    return time.monotonic() - start


async def wait_until_async(condition: Callable[[], Awaitable[object]], *, within: float) -> bool:
    """`wait_until` for a condition that must be awaited (an HTTP probe, a Redis read)."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL)
    return True
