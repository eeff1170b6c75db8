"""What a new TCP connection per request costs: HTTP/1.0 against HTTP/1.1 keep-alive.

HTTP/1.0 opened a connection, sent one request, read one response and closed; HTTP/1.1 keeps
the connection open and sends the next request on it. Lesson 01 times both against the same
server, on raw sockets so that nothing (no pool, no client library) hides a connection:

    new, reused = compare("127.0.0.1", port, n=300)

`compare` interleaves the two in rounds, so a busy moment on the machine hurts both alike.
A timing on a busy machine only ever gains noise (a preempted process, another's burst), so
compare the fast ends, `fast_end` (the 10th percentile), where the connection's own cost
shows; a median may swing either way. Then `connections_seen` counts, from the server's own
access log, how many connections each version really used: uvicorn logs the client's address
*and port* for every request, and each new connection comes from a new port.
"""

from __future__ import annotations

import re
import socket
import statistics
import time
from collections.abc import Iterable

from server.clients.http_raw import build_request, read_response

# uvicorn's access log line: `INFO:     127.0.0.1:51234 - "GET /hello HTTP/1.1" 200 OK`
ACCESS_LINE = re.compile(
    r'127\.0\.0\.1:(?P<port>\d+) - "GET (?P<path>\S+) (?P<version>HTTP/1\.[01])"'
)


def one_request_per_connection(host: str, port: int, n: int, path: str = "/hello") -> list[float]:
    """HTTP/1.0: connect, ask, read the answer, close; n times. Seconds per request."""
    durations = []
    for _ in range(n):
        started = time.perf_counter()
        with socket.create_connection((host, port)) as sock:
            sock.sendall(build_request(host, path, port=port, version="1.0"))
            read_response(sock.makefile("rb"))
        durations.append(time.perf_counter() - started)
    return durations


def one_connection_for_all(host: str, port: int, n: int, path: str = "/hello") -> list[float]:
    """HTTP/1.1 keep-alive: one connection, n requests in turn. Seconds per request."""
    durations = []
    with socket.create_connection((host, port)) as sock:
        reader = sock.makefile("rb")
        for _ in range(n):
            started = time.perf_counter()
            sock.sendall(build_request(host, path, port=port))
            read_response(reader)  # reads exactly one response: the connection stays usable
            durations.append(time.perf_counter() - started)
    return durations


def compare(
    host: str, port: int, n: int = 300, rounds: int = 3, path: str = "/hello"
) -> tuple[list[float], list[float]]:
    """n requests each way, in `rounds` interleaved rounds: (new connection, kept alive).

    Each round of keep-alive uses one connection, so the server sees `rounds` connections
    for the HTTP/1.1 requests and `n` for the HTTP/1.0 ones.
    """
    if n % rounds:
        raise ValueError(f"n ({n}) must be a multiple of rounds ({rounds})")
    new_connection: list[float] = []
    kept_alive: list[float] = []
    for _ in range(rounds):
        new_connection += one_request_per_connection(host, port, n // rounds, path)
        kept_alive += one_connection_for_all(host, port, n // rounds, path)
    return new_connection, kept_alive


def fast_end(durations: list[float]) -> float:
    """The 10th percentile of `durations`: the time the fastest tenth of requests beat."""
    return statistics.quantiles(durations, n=10)[0]


def connections_seen(log_lines: Iterable[str], path: str = "/hello") -> dict[str, int]:
    """How many connections (distinct client ports) each HTTP version used for `path`."""
    ports: dict[str, set[str]] = {"HTTP/1.0": set(), "HTTP/1.1": set()}
    for line in log_lines:
        found = ACCESS_LINE.search(line)
        if found and found["path"] == path:
            ports[found["version"]].add(found["port"])
    return {version: len(seen) for version, seen in ports.items()}
