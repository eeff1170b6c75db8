"""How soon a server notices that a client left: the cleanup proof of lesson 07.

A generator that outlives its client keeps whatever it holds (a database cursor, an upstream
LLM call that is still billing). From the outside the only proof of cleanup is to count: the
Django project's `GET /stats` says how many `events` streams ended `cancelled`. So this reads
the first event, closes the connection, and polls that count until it moves.
"""

from __future__ import annotations

import time

import httpx2


def cancelled(base: str, name: str = "events") -> int:
    """How many `name` streams the server at `base` has counted as cancelled so far."""
    counts: dict[str, int] = httpx2.get(f"{base}/stats").json().get(name, {})
    return counts.get("cancelled", 0)


def seconds_to_notice(base: str, query: str, deadline: float = 20.0) -> float:
    """Read the first event of `/events?query`, leave, and time until the server cancels it.

    Raises `TimeoutError` if the server has not noticed after `deadline` seconds.
    """
    before = cancelled(base)
    with httpx2.stream("GET", f"{base}/events?{query}", timeout=30) as response:
        chunks = response.iter_bytes()  # keep a reference: the first event, then leave
        next(chunks)
    left = time.perf_counter()
    while cancelled(base) == before:
        if time.perf_counter() - left > deadline:
            raise TimeoutError(f"{base} did not notice in {deadline:g} s ({query})")
        time.sleep(0.02)
    return time.perf_counter() - left
