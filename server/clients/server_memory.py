"""How much memory a server takes while it answers: streamed bodies against whole ones.

`HttpResponse(content)` holds the whole body in the server's memory before the first byte
goes out; a streamed body holds a block at a time. The difference shows in the server
process's resident memory (RSS), sampled every few milliseconds while a client reads the
response: the peak above the RSS at the start is what that one response cost. RSS is read
with `server.clients.measure.rss_kib`, as every bench here reads it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import httpx2

from server.clients.measure import rss_kib

T = TypeVar("T")
KIB_PER_MIB = 1024


def peak_growth_mib(
    pid: int, action: Callable[..., T], *args: object, every: float = 0.002
) -> tuple[float, T]:
    """Run `action(*args)`; the most the RSS of process `pid` rose above its start (MiB)."""
    start = peak = rss_kib(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pid))
            time.sleep(every)

    sampler = threading.Thread(target=sample, name="rss sampler", daemon=True)
    sampler.start()
    try:
        result = action(*args)
    finally:
        done.set()
        sampler.join()
    peak = max(peak, rss_kib(pid))
    return (peak - start) / KIB_PER_MIB, result


def read_to_end(url: str) -> tuple[float, int]:
    """Download `url`, discarding the bytes: (seconds to the first byte, bytes read)."""
    size = 0
    start = time.perf_counter()
    with httpx2.stream("GET", url, timeout=120) as response:
        response.raise_for_status()
        first = time.perf_counter() - start
        for chunk in response.iter_raw():
            size += len(chunk)
    return first, size
