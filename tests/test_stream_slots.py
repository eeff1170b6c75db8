"""What an open stream holds is given back however the stream ends, even when its body never ran.

A client that connects and leaves at once can make Starlette cancel the response before the
body generator starts, and a generator that never started never runs its `finally`: the room
subscription taken for it before the 200 used to stay in the hub for good.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable, Iterator

import httpx2
import pytest

from server.asgi.stream_slots import Slots, released_after
from server.course.launcher import Server, start_app, start_command


def test_a_slot_is_taken_only_while_one_is_free_and_given_back() -> None:
    slots = Slots(2)
    assert slots.take("ana") and slots.take("ana") and not slots.take("ana")
    assert slots.take("bo")
    slots.give_back("ana")
    assert slots.take("ana") and slots.held == {"ana": 2, "bo": 1}
    for _ in range(2):
        slots.give_back("ana")
    assert "ana" not in slots.held


def test_release_runs_when_the_response_call_ends_even_by_an_error() -> None:
    released: list[bool] = []

    async def failing(scope: object, receive: object, send: object) -> None:
        raise RuntimeError("the body failed")

    app = released_after(failing, lambda: released.append(True))
    with pytest.raises(RuntimeError):
        asyncio.run(app({}, None, None))  # type: ignore[arg-type]
    assert released == [True]


def hang_up_at_once(server: Server, path: str, times: int) -> None:
    """Send a GET and close the socket without reading a byte, `times` times."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode()
    for _ in range(times):
        with socket.create_connection((server.host, server.port)) as sock:
            sock.sendall(request)


@pytest.fixture(params=["uvicorn", "hypercorn"])
def runner(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Server]]:
    """uvicorn (ASGI 2.3: Starlette races the body against the disconnect) and hypercorn
    (another server, which starts a response's body differently)."""
    started: list[Server] = []

    def run(app: str) -> Server:
        env = {"BROKER": "memory"}
        if request.param == "uvicorn":
            server = start_app(app, env=env)
        else:
            command = [sys.executable, "-m", "hypercorn", "--bind", "127.0.0.1:{port}", app]
            server = start_command(command, listening=r"Running on https?://\S+:(\d+)", env=env)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


@pytest.mark.parametrize("app", ["server.apps.broadcast:app", "server.apps.ws_chat:app"])
def test_clients_that_leave_at_once_leave_no_subscription_behind(
    runner: Callable[[str], Server], wait_for: Callable[..., float], app: str
) -> None:
    server = runner(app)
    hang_up_at_once(server, "/events", 50)

    def clients() -> int:
        return int(httpx2.get(server.url + "/stats", timeout=10).json()["hub"]["clients"])

    wait_for(lambda: clients() == 0, "every subscription given back")
