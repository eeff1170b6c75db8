"""server.clients.chat_reply against a real capstone stack: read, cut, resume, and a kill."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing

import httpx2
import pytest

from server.apps.fake_openai.model import reply_for
from server.clients.chat_reply import Reply, new_user, read_reply, resume_to_end
from server.course.capstone_stack import Capstone, start_capstone
from server.course.ports import free_port

pytestmark = [pytest.mark.nginx, pytest.mark.redis]

TOKENS = 20
SETTINGS = {"LEASE_SECONDS": "1", "SWEEP_SECONDS": "0.2", "HEARTBEAT": "1", "RATE_PER_MINUTE": "60"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    fake = {"FAKE_OPENAI_TPS": "20", "FAKE_OPENAI_TTFT": "0.1", "FAKE_OPENAI_TOKENS": str(TOKENS)}
    with start_capstone(workers=2, env=SETTINGS, fake_env=fake) as running:
        yield running


def send(client: httpx2.Client, message: str) -> dict[str, object]:
    answer = client.post("/api/chat", json={"message": message})
    assert answer.status_code == 202, answer.text
    body: dict[str, object] = answer.json()
    return body


def assert_exact(reply: Reply, message: str, seed: object) -> None:
    indices = [t["i"] for t in reply.tokens]
    assert indices == list(range(len(indices))), "each token once, in order"
    assert reply.text == reply_for(message, int(str(seed)), TOKENS)
    assert reply.events[-1].event == "done" and reply.ended


def test_one_connection_reads_a_reply_to_its_last_event(stack: Capstone) -> None:
    with closing(new_user(stack.url)) as user:
        accepted = send(user, "one connection")
        reply = read_reply(user, str(accepted["events"]))
    assert_exact(reply, "one connection", accepted["seed"])
    assert reply.connections == 1 and reply.events[0].event == "owner"
    assert reply.arrivals == sorted(reply.arrivals) and len(reply.arrivals) == len(reply.events)
    assert reply.first_token_at() == reply.arrivals[1]
    assert reply.first_token_at(after=reply.arrivals[5]) == reply.arrivals[6]


def test_a_reader_cut_after_some_tokens_resumes_from_its_last_id(stack: Capstone) -> None:
    with closing(new_user(stack.url)) as user:
        accepted = send(user, "cut and resume")
        reply = read_reply(user, str(accepted["events"]), stop_after=5)
        assert len(reply.tokens) == 5 and not reply.ended
        resume_to_end(user, str(accepted["events"]), reply)
    assert_exact(reply, "cut and resume", accepted["seed"])
    assert reply.connections == 2


def test_a_killed_owner_s_reply_is_read_to_its_end_through_the_survivor(stack: Capstone) -> None:
    with closing(new_user(stack.url)) as user:
        accepted = send(user, "kill the owner")
        owner = stack.workers[str(accepted["worker"])]
        reply = read_reply(user, str(accepted["events"]), stop_after=4)
        owner.kill()
        try:
            resume_to_end(user, str(accepted["events"]), reply)
        finally:
            owner.restart()
    assert_exact(reply, "kill the owner", accepted["seed"])
    assert reply.connections >= 2


def test_a_refusal_is_an_error_and_no_server_is_a_timeout(stack: Capstone) -> None:
    with closing(new_user(stack.url)) as user, pytest.raises(httpx2.HTTPStatusError, match="404"):
        read_reply(user, f"api/replies/{'0' * 32}/events")
    with httpx2.Client(base_url=f"http://127.0.0.1:{free_port()}") as nowhere:
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match="did not end"):
            resume_to_end(nowhere, "api/replies/x/events", Reply(), deadline=0.5, pause=0.05)
        assert time.perf_counter() - started < 5
