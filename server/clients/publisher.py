"""Publish to a broadcast room the way a careful client does: numbered, and retried safely.

A publisher whose worker dies mid-request cannot tell whether its message was stored: the
`XADD` may have run before the answer was lost. Not retrying may lose the message; retrying
blindly may store it twice. `publish` retries a 502, 503 or 504 (or a broken connection) with
the same `Idempotency-Key`, which the streams broker stores once per key. Lesson 09's
"exactly once" needs this half as much as the readers' `Last-Event-ID`.

`publish_numbered` publishes `{"n": n, "t": time.time()}` messages one after another, so that
`server.clients.listeners.tally` can count what each listener lost, got twice or out of order,
and a listener can compute each message's delivery delay from `t`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2

from server.idempotency import HEADER

RETRYABLE = (502, 503, 504)  # a proxy or a worker that could not take it now: try again


@dataclass(frozen=True)
class Published:
    n: int
    id: str | None  # the broker's id (streams), or None
    worker: str  # the worker that accepted it
    attempts: int


async def publish(
    client: httpx2.AsyncClient,
    url: str,
    data: Mapping[str, Any],
    *,
    key: str | None = None,
    attempts: int = 50,
    retry_delay: float = 0.05,
) -> tuple[httpx2.Response, int]:
    """POST `data` to `url` (…/publish) until it is accepted (201) or refused for good.

    A 502/503/504 or a broken connection is retried after `retry_delay` seconds, up to
    `attempts` times, with the same `Idempotency-Key` (`key`): the first try may have been
    stored before its answer was lost. Returns the last response (its status says which)
    and the number of attempts made.
    """
    headers = {HEADER: key} if key else {}
    response: httpx2.Response | None = None
    for attempt in range(1, attempts + 1):
        try:
            response = await client.post(url, json=dict(data), headers=headers)
        except httpx2.TransportError:
            response = None
        if response is not None and response.status_code not in RETRYABLE:
            return response, attempt
        await asyncio.sleep(retry_delay)
    if response is None:
        raise httpx2.ConnectError(f"no answer from {url} in {attempts} attempts")
    return response, attempts


async def publish_numbered(
    client: httpx2.AsyncClient,
    url: str,
    numbers: Iterable[int],
    *,
    interval: float = 0.0,
    key_prefix: str = "",
    extra: Mapping[str, Any] | None = None,
    into: list[Published] | None = None,
) -> list[Published]:
    """Publish `{"n": n, "t": time.time(), **extra}` for each n, one after the other.

    Each waits for its 201 (retrying as `publish` does, with the key `key_prefix` + n when
    `key_prefix` is set), then `interval` seconds. Raises if one is refused for good. Each
    accepted one is appended to `into` at once (pass a list to watch progress from another
    task), which is also returned.
    """
    published = into if into is not None else []
    for n in numbers:
        key = f"{key_prefix}{n}" if key_prefix else None
        data = {"n": n, "t": time.time(), **(extra or {})}
        response, attempts = await publish(client, url, data, key=key)
        if response.status_code != 201:
            raise RuntimeError(f"publish {n}: {response.status_code} {response.text}")
        body = response.json()
        published.append(Published(n, body["id"], body["worker"], attempts))
        if interval:
            await asyncio.sleep(interval)
    return published
