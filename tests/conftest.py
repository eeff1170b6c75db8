"""Shared fixtures: real servers on free ports, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.launcher import Server, start_app, start_nginx, start_redis


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start an ASGI app (import string) under uvicorn; stopped when the test ends."""
    started: list[Server] = []

    def _serve(app: str, **kwargs: Any) -> Server:
        server = start_app(app, **kwargs)
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()


@pytest.fixture
def nginx() -> Iterator[Callable[..., Server]]:
    """Start nginx in front of upstreams; stopped when the test ends."""
    started: list[Server] = []

    def _nginx(upstreams: list[Any], **kwargs: Any) -> Server:
        server = start_nginx(upstreams, **kwargs)
        started.append(server)
        return server

    yield _nginx
    for server in started:
        server.stop()


@pytest.fixture
def redis_server() -> Iterator[Server]:
    """A throwaway redis-server on a free port."""
    with start_redis() as server:
        yield server
