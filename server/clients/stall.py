"""Measure whether one slow stream holds up everybody else on the same server.

Lesson 04 and its tests use it to compare a sync generator (run in a worker thread) with an
async generator that calls `time.sleep` (which blocks the event loop, and so every client).
"""

from __future__ import annotations

import threading
import time

import httpx


def ping_latencies_during(url: str, stream_path: str, ping_path: str = "/ping") -> list[float]:
    """Seconds each `GET ping_path` took while another client read `stream_path` to its end.

    The pings start once the stream's response headers have arrived (so the stream really is
    running, no sleep-and-hope) and stop when the stream ends.
    """
    started, done = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def read_stream() -> None:
        try:
            with httpx.stream("GET", url + stream_path, timeout=30) as response:
                started.set()
                response.read()
        except BaseException as error:  # reported in the calling thread
            failure.append(error)
        finally:
            started.set()
            done.set()

    latencies = []
    with httpx.Client(timeout=30) as client:
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
