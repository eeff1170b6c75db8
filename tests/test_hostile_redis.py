"""The capstone's sweeper against a Redis that answers with errors: it says so, and goes on.

Redis that is up but refuses a command (WRONGTYPE on the lease index, READONLY after a failover,
a script error) is not "Redis is down": the sweeper caught only the connection errors, so any
other one ended its task silently. That worker then never again adopted a reply whose worker died,
and `/readyz` still said ready.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
import redis
from conftest import wait_until

from server.apps.capstone.replies import LEASES
from server.course.capstone_stack import Capstone, start_capstone

pytestmark = [pytest.mark.nginx, pytest.mark.redis]


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    with start_capstone(workers=1) as running:
        yield running


def readiness_until(worker: str, wanted: int, within: float = 10.0) -> httpx2.Response:
    """`/readyz` polled until it answers `wanted`; that answer."""
    answers: list[httpx2.Response] = []

    def answered() -> bool:
        answers.append(httpx2.get(f"{worker}/readyz", timeout=5))
        return answers[-1].status_code == wanted

    wait_until(answered, f"/readyz to answer {wanted}", within)
    return answers[-1]


def test_a_sweep_refused_by_redis_is_reported_and_the_sweeper_goes_on(stack: Capstone) -> None:
    worker = stack.workers["A"].url
    store = redis.Redis.from_url(stack.redis.url)
    try:
        assert readiness_until(worker, 200).status_code == 200
        store.delete(LEASES)
        store.set(LEASES, "not a sorted set")  # every sweep now gets WRONGTYPE
        failing = readiness_until(worker, 503)
        assert failing.status_code == 503, failing.text
        assert "sweep" in failing.json()["status"] and "WRONGTYPE" in failing.json()["status"]
        store.delete(LEASES)
        back = readiness_until(worker, 200)  # the sweeper went on: its next sweep succeeded
        assert back.status_code == 200, back.text
    finally:
        store.delete(LEASES)
        store.close()
    log = stack.workers["A"].log_path.read_text()
    assert "sweep failed" in log and "WRONGTYPE" in log
