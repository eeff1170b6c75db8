"""Measure whether slow streams hold up everybody else on the same server.

Lesson 04 and its tests use it for the two ways a stream can stall other clients:

- `ping_latencies_during`: one async generator that calls `time.sleep` blocks the event loop,
  so every request waits (a sync generator does not: it runs in a worker thread).
- `seconds_behind_open_streams`: each sync generator holds one of the server's worker threads
  while it sleeps, and there are 40 (anyio's default). Once they are all taken, a plain `def`
  endpoint, and the next sync stream, wait for a free one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx2


def ping_latencies_during(url: str, stream_path: str, ping_path: str = "/ping") -> list[float]:
    """Seconds each `GET ping_path` took while another client read `stream_path` to its end.

    The pings start once the stream's response headers have arrived (so the stream really is
    running, no sleep-and-hope) and stop when the stream ends.
    """
    started, done = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def read_stream() -> None:
        try:
            with httpx2.stream("GET", url + stream_path, timeout=30) as response:
                started.set()
                response.read()
        except BaseException as error:  # reported in the calling thread
            failure.append(error)
        finally:
            started.set()
            done.set()

    latencies = []
    with httpx2.Client(timeout=30) as client:
        client.get(url + ping_path)  # open the ping connection before the stream starts
        reader = threading.Thread(target=read_stream)
        reader.start()
        started.wait()
        while not done.is_set():
            begin = time.perf_counter()
            client.get(url + ping_path)
            latencies.append(time.perf_counter() - begin)
    reader.join()
    if failure:
        raise failure[0]
    return latencies


def seconds_to_first_byte(client: httpx2.Client, url: str) -> float:
    """Seconds from sending `GET url` to the first byte of its body; the rest is read too, so
    a stream ends as it would for any client (not abandoned by this one)."""
    begin = time.perf_counter()
    with client.stream("GET", url) as response:
        chunks = response.iter_raw()
        next(chunks, b"")
        seconds = time.perf_counter() - begin
        for _ in chunks:
            pass
    return seconds


def seconds_behind_open_streams(
    url: str, stream_path: str, streams: int, probes: Sequence[str], timeout: float = 30
) -> dict[str, float]:
    """Open `streams` connections to `stream_path`, and time a GET of each probe path meanwhile.

    `stream_path` must be a finite stream (`?limit=`): each connection reads it to its end. A
    stream counts as open once the first bytes of its body arrived, so the server is running
    its generator (no sleep-and-hope). Once all are open, the probes go out at once, each on a
    connection of its own, each timed to the first byte of its body (`seconds_to_first_byte`).
    Returns `{probe: seconds}` when every stream and probe has ended. Fails with
    `TimeoutError` if the streams do not all open within `timeout` seconds.
    """
    opened = threading.Semaphore(0)  # released once per stream: open, or failed to open
    failures: list[BaseException] = []
    limits = httpx2.Limits(max_connections=None, max_keepalive_connections=0)

    def hold(client: httpx2.Client) -> None:
        try:
            with client.stream("GET", url + stream_path) as response:
                chunks = response.iter_raw()
                next(chunks, b"")
                opened.release()
                for _ in chunks:
                    pass
        except BaseException as error:  # reported in the calling thread
            failures.append(error)
            opened.release()

    with (
        httpx2.Client(timeout=timeout, limits=limits) as client,  # thread-safe, per its docs
        ThreadPoolExecutor(streams + len(probes)) as pool,
    ):
        for _ in range(streams):
            pool.submit(hold, client)
        deadline = time.monotonic() + timeout
        for _ in range(streams):
            if not opened.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"{streams} streams of {stream_path} not open in {timeout} s")
        if failures:
            raise RuntimeError(f"a stream of {stream_path} failed") from failures[0]
        waits = {path: pool.submit(seconds_to_first_byte, client, url + path) for path in probes}
        return {path: wait.result() for path, wait in waits.items()}
