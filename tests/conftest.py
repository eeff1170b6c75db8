"""Shared fixtures: real servers on free ports, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from server.course.launcher import Server, start_app


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start an ASGI app (import string) under uvicorn: `serve("server.x:app")`.

    Every server it started is stopped when the test ends.
    """
    started: list[Server] = []

    def _serve(app: str, **kwargs: Any) -> Server:
        server = start_app(app, **kwargs)
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()
