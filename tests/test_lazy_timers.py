"""The two lazy timers on the fan-out's hot path: the hub's heartbeat and the send deadline.

Both replaced an `asyncio.timeout` per message (one timer armed and cancelled per delivery,
15% of a worker's CPU in `bench/bench_capacity.py`) with one timer that re-arms itself. The
behaviour must be what the per-message timeout gave: a heartbeat after `timeout` seconds of
silence and never while messages flow; a send that waits too long ends the response; nothing
else is swallowed. Real event loop, short timeouts, generous upper bounds.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from server.asgi.send_deadline import SendDeadline
from server.fanout.hub import Dropped, Hub, Message

SLACK = 2.0  # seconds a loaded 2-core machine may add to a timer


def test_an_idle_subscription_gets_a_heartbeat_after_the_timeout() -> None:
    async def scenario() -> tuple[Message | None, float]:
        subscription = Hub().join()
        started = time.monotonic()
        return await subscription.get(0.2), time.monotonic() - started

    message, waited = asyncio.run(scenario())
    assert message is None
    assert 0.19 <= waited < 0.2 + SLACK


def test_no_heartbeat_while_messages_keep_coming_then_one_after_the_silence() -> None:
    timeout, gap, count = 0.5, 0.05, 30  # messages for 1.5 s, three timeouts, each 10x a gap

    async def scenario() -> tuple[list[str | None], float]:
        hub = Hub()
        subscription = hub.join()

        async def publish() -> None:
            for n in range(count):
                hub.publish(Message(str(n)))
                await asyncio.sleep(gap)

        publisher = asyncio.create_task(publish())
        got: list[str | None] = []
        while len(got) < count:
            message = await subscription.get(timeout)
            got.append(None if message is None else message.data)
        last = time.monotonic()
        await publisher
        heartbeat = await subscription.get(timeout)
        assert heartbeat is None
        return got, time.monotonic() - last

    got, silence = asyncio.run(scenario())
    assert got == [str(n) for n in range(count)]  # no None among them: the timer re-armed
    assert timeout / 2 <= silence < timeout + SLACK  # due `timeout` after the last message


def test_a_zero_timeout_on_an_empty_queue_is_a_heartbeat_at_once() -> None:
    async def scenario() -> tuple[Message | None, Message | None]:
        hub = Hub()
        subscription = hub.join()
        empty = await subscription.get(0)
        hub.publish(Message("x"))
        return empty, await subscription.get(0)

    empty, queued = asyncio.run(scenario())
    assert empty is None
    assert queued is not None and queued.data == "x"


def test_leaving_the_hub_stops_the_heartbeat_timer() -> None:
    async def scenario() -> bool:
        hub = Hub()
        subscription = hub.join()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await subscription.get(60)  # arms the timer, then is cancelled
        assert subscription._timer is not None
        hub.leave(subscription)
        return subscription._timer is None

    assert asyncio.run(scenario())


def test_a_dropped_subscription_raises_even_while_waiting_for_a_heartbeat() -> None:
    async def scenario() -> None:
        hub = Hub(queue_size=1)
        subscription = hub.join()
        waiting = asyncio.create_task(subscription.get(60))
        await asyncio.sleep(0)
        subscription.drop("test")
        with pytest.raises(Dropped, match="test"):
            await waiting
        assert subscription._timer is None

    asyncio.run(scenario())


# --- the send deadline ---------------------------------------------------------------------


def app_sending(delays: list[float]) -> ASGIApp:
    """An ASGI app that sends one message per delay, each send taking that long."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for delay in delays:
            await send({"type": "http.response.body", "delay": delay, "more_body": True})

    return app


async def slow_send(message: AsgiMessage) -> None:
    await asyncio.sleep(message["delay"])


async def no_request() -> AsgiMessage:
    raise AssertionError("the app under test never reads the request")


def run_deadline(delays: list[float], seconds: float) -> tuple[list[str], float]:
    timeouts: list[str] = []
    deadline = SendDeadline(app_sending(delays), seconds, lambda: timeouts.append("expired"))

    async def scenario() -> float:
        started = time.monotonic()
        await deadline({"type": "http"}, no_request, slow_send)
        return time.monotonic() - started

    return timeouts, asyncio.run(scenario())


def test_a_send_that_waits_past_the_deadline_ends_the_response() -> None:
    timeouts, took = run_deadline([0.01, 30.0, 0.01], seconds=0.3)
    assert timeouts == ["expired"]
    assert 0.3 <= took < 0.3 + SLACK


def test_many_quick_sends_over_several_deadlines_never_expire() -> None:
    # 1.2 s of sends in all, over two deadlines; each send 25x shorter than the deadline, so a
    # loaded machine's stall of a few hundred ms cannot make one look stuck
    timeouts, took = run_deadline([0.02] * 60, seconds=0.5)
    assert timeouts == []
    assert took >= 1.2


def test_a_timeout_error_of_the_app_itself_is_not_swallowed() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise TimeoutError("the app's own")

    deadline = SendDeadline(app, 5, lambda: None)
    with pytest.raises(TimeoutError, match="the app's own"):
        asyncio.run(deadline({"type": "http"}, no_request, slow_send))


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def scenario() -> None:
        deadline = SendDeadline(app_sending([30.0]), 5, lambda: None)
        task = asyncio.create_task(deadline({"type": "http"}, no_request, slow_send))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
