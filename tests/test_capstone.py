"""The capstone (lesson 11) over HTTP, on one stack shared by the module: Redis, the fake model,
two workers and nginx, all real processes.

Every reply is checked token by token against the fake model's deterministic text (same prompt
and seed, same tokens), so a lost, repeated or reordered token fails a test. Faults are
injected by pid (`Server.kill`), never by sleeping and hoping; waits are deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis as redis_sync
from conftest import wait_until

from server.apps.capstone.session import COOKIE
from server.apps.fake_openai.model import reply_for
from server.course.capstone_stack import Capstone, start_capstone
from server.sse import Decoder, Event

pytestmark = [pytest.mark.nginx, pytest.mark.redis]

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 30.0  # seconds: generous, for a loaded 2-core machine
TOKENS = 40
SETTINGS = {
    "MAX_ACTIVE": "2",
    "RATE_PER_MINUTE": "6",
    "MAX_MESSAGE_CHARS": "200",
    "MAX_BODY_BYTES": "2048",
    "HISTORY_CAP": "6",
    "LEASE_SECONDS": "1.5",
    "SWEEP_SECONDS": "0.25",
    "HEARTBEAT": "1",
    "MAX_STREAMS": "3",
}
TERMINAL = ("done", "error", "stopped")


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    fake = {"FAKE_OPENAI_TPS": "10", "FAKE_OPENAI_TTFT": "0.2", "FAKE_OPENAI_TOKENS": str(TOKENS)}
    with start_capstone(workers=2, env=SETTINGS, fake_env=fake) as running:
        yield running
    for client in CLIENTS:
        client.close()


CLIENTS: list[httpx2.Client] = []  # closed with the stack


def client_for(base: str) -> httpx2.Client:
    client = httpx2.Client(base_url=base, timeout=DEADLINE)
    CLIENTS.append(client)
    return client


def user(stack: Capstone, base: str | None = None) -> httpx2.Client:
    """A new user: a client with its own session cookie (limits are per user)."""
    client = client_for(base or stack.url)
    assert client.get("/api/session").json()["new"] is True
    return client


def post(client: httpx2.Client, message: str, **extra: object) -> httpx2.Response:
    return client.post("/api/chat", json={"message": message, **extra})


def read(
    client: httpx2.Client,
    path: str,
    last_id: str = "",
    stop_after: int | None = None,
) -> list[Event]:
    """The events of a reply stream, to its last event (or after `stop_after` tokens, or after
    DEADLINE seconds: a reply nobody generates is a stream held open by heartbeats)."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    events: list[Event] = []
    decoder = Decoder()
    started = time.monotonic()
    with client.stream("GET", f"/{path}", headers=headers) as response:
        if response.status_code in (502, 503, 504):  # nginx found no live worker this time
            raise httpx2.TransportError(f"{response.status_code} from nginx")
        assert response.status_code == 200, response.read()
        for chunk in response.iter_bytes():
            events += decoder.feed(chunk)
            tokens = sum(e.event == "message" for e in events)
            if events and events[-1].event in TERMINAL:
                break
            if stop_after is not None and tokens >= stop_after:
                break
            if time.monotonic() - started > DEADLINE:
                break
    return events


def read_to_end(
    client: httpx2.Client, path: str, events: list[Event], unfinished: str = "never finished"
) -> list[Event]:
    """Reconnect with the last event's id until the reply's last event, as the page does; an
    attempt for which nginx had no live worker (a 502, a cut) is tried again."""

    def ended() -> bool:
        if events[-1].event not in TERMINAL:
            with contextlib.suppress(httpx2.TransportError):  # tried again at the next poll
                events.extend(read(client, path, last_id=events[-1].id or ""))
        return events[-1].event in TERMINAL

    wait_until(ended, f"the reply {unfinished}", DEADLINE)
    return events


def tokens(events: list[Event]) -> list[dict[str, object]]:
    return [json.loads(e.data) for e in events if e.event == "message"]


def assert_exact_reply(events: list[Event], message: str, seed: int) -> None:
    pieces = tokens(events)
    assert [p["i"] for p in pieces] == list(range(len(pieces))), "a token lost or repeated"
    assert "".join(str(p["delta"]) for p in pieces) == reply_for(message, seed, TOKENS)
    assert events[-1].event == "done", events[-1]


def cancelled_upstream(stack: Capstone) -> int:
    """Generations the fake model saw cancelled by their client (a worker), so far."""
    return int(httpx2.get(f"{stack.upstream.url}/stats").json()["cancelled"])


def redis_keys(stack: Capstone, pattern: str) -> list[str]:
    client = redis_sync.Redis.from_url(stack.redis.url, decode_responses=True)
    try:
        return sorted(client.scan_iter(match=pattern))
    finally:
        client.close()


def test_a_reply_streams_through_nginx_token_by_token_and_lands_in_the_history(
    stack: Capstone,
) -> None:
    client = user(stack)
    accepted = post(client, "What is streaming?")
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    request_id = accepted.headers["x-request-id"]
    assert accepted.headers["x-worker"] in stack.workers
    events = read(client, body["events"])
    assert events[0].event == "owner" and json.loads(events[0].data)["takeover"] is False
    assert events[0].retry == 1000
    assert_exact_reply(events, "What is streaming?", body["seed"])
    saved = client.get(f"/api/conversations/{body['conversation']}").json()
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    assert saved["messages"][1]["content"] == reply_for("What is streaming?", body["seed"], TOKENS)
    assert saved["pending"] is None
    # nginx's request id reached the app, and its access log has the line (JSON, no prompt)
    log = stack.workers[accepted.headers["x-worker"]].log_tail(200)
    line = next(json.loads(x) for x in log.splitlines() if request_id in x)
    assert (line["method"], line["path"], line["status"]) == ("POST", "/api/chat", 202)
    assert "streaming" not in json.dumps(line)


def test_a_stream_resumes_on_the_other_worker_from_last_event_id(stack: Capstone) -> None:
    client = user(stack)
    body = post(client, "resume me").json()
    first = read(client, body["events"], stop_after=5)
    # straight to the worker that did NOT generate it: the stream is in Redis, not in a worker
    other = next(n for n in stack.workers if n != body["worker"])
    direct = client_for(stack.workers[other].url)
    direct.cookies.set(COOKIE, client.cookies[COOKIE])
    rest = read(direct, body["events"], last_id=first[-1].id or "")
    assert_exact_reply(first + rest, "resume me", body["seed"])
    bad = direct.get(f"/{body['events']}", headers={"Last-Event-ID": "17"})
    assert bad.status_code == 400 and "Redis stream id" in bad.json()["detail"]


def test_stop_on_another_worker_ends_the_reply_and_cancels_the_upstream(stack: Capstone) -> None:
    assert stack.upstream is not None
    cancelled = cancelled_upstream(stack)
    client = user(stack)
    body = post(client, "stop me").json()
    events = read(client, body["events"], stop_after=3)
    other = next(n for n in stack.workers if n != body["worker"])
    direct = client_for(stack.workers[other].url)
    direct.cookies.set(COOKIE, client.cookies[COOKIE])
    stopped = direct.post(f"/{body['stop']}")
    assert stopped.status_code == 200, stopped.text
    rest = read(client, body["events"], last_id=events[-1].id or "")
    assert rest[-1].event == "stopped"
    assert len(tokens(events + rest)) < TOKENS
    # The owner notices at its next token or lease renewal, and cancels the generation.
    wait_until(lambda: cancelled_upstream(stack) > cancelled, "the upstream generation cancelled")
    again = client.post(f"/{body['stop']}")
    assert again.status_code == 409 and "already ended (stopped)" in again.json()["detail"]
    history = client.get(f"/api/conversations/{body['conversation']}").json()["messages"]
    assert history[-1]["status"] == "stopped"


def test_the_concurrent_cap_is_a_429_that_says_what_to_do(stack: Capstone) -> None:
    client = user(stack)
    running = [post(client, f"busy {n}").json() for n in range(2)]
    refused = post(client, "one too many")
    assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "busy"
    assert "already have 2 replies streaming" in refused.json()["detail"]
    assert client.post(f"/{running[0]['stop']}").status_code == 200
    assert post(client, "now there is room").status_code == 202


def test_open_streams_per_user_are_capped_on_each_worker(stack: Capstone) -> None:
    client = user(stack)
    body = post(client, "read me thrice").json()
    worker = stack.workers[body["worker"]]
    direct = client_for(worker.url)
    direct.cookies.set(COOKIE, client.cookies[COOKIE])
    path = f"/{body['events']}"
    with contextlib.ExitStack() as open_streams:
        held = [open_streams.enter_context(direct.stream("GET", path)) for _ in range(3)]
        assert [response.status_code for response in held] == [200] * 3
        readers = [response.iter_bytes() for response in held]  # kept: a dropped one closes
        for reader in readers:  # each stream is counted once its body runs
            assert b"event: owner" in next(reader)
        refused = direct.get(path)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "3 reply streams open on this server" in refused.json()["detail"]
    client.post(f"/{body['stop']}")  # (so that a stream read below ends at once)
    wait_until(lambda: direct.get(path).status_code != 429, "closed streams uncounted")


def test_the_rate_limit_is_a_429_with_retry_after(stack: Capstone) -> None:
    for _attempt in range(2):  # a minute boundary inside the test resets the count: try again
        client = user(stack)
        minute = int(time.time()) // 60
        statuses = []
        for n in range(7):
            response = post(client, f"rate {n}")
            statuses.append(response.status_code)
            if response.status_code == 202:
                client.post(f"/{response.json()['stop']}")  # not to hit the concurrent cap
        if int(time.time()) // 60 == minute:
            break
    assert statuses == [202] * 6 + [429], statuses
    assert response.json()["error"] == "rate" and "at most 6 a minute" in response.json()["detail"]
    assert 1 <= int(response.headers["retry-after"]) <= 60


def test_oversized_and_malformed_requests_are_refused_and_nothing_is_stored(
    stack: Capstone,
) -> None:
    client = user(stack)
    me = client.get("/api/session").json()["user"]
    as_json = {"content-type": "application/json"}
    huge = client.post("/api/chat", content=b'{"message": "' + b"x" * 4000 + b'"}', headers=as_json)
    assert huge.status_code == 413 and "at most 2048 bytes" in huge.json()["detail"]
    long = post(client, "y" * 201)
    assert long.status_code == 413 and "201 characters, at most 200" in long.json()["detail"]
    broken = client.post("/api/chat", content=b'{"message": "hi"', headers=as_json)
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["detail"]
    for body, says in (([1], "JSON object"), ({"message": 5}, "'message'"),
                       ({"message": "hi", "conversation": "../x"}, "'conversation'")):  # fmt: skip
        wrong = client.post("/api/chat", json=body)
        assert wrong.status_code == 422 and says in wrong.json()["detail"], wrong.text
    assert redis_keys(stack, f"*{me}*") == []


def test_a_forged_or_missing_session_is_refused_and_nothing_is_stored(stack: Capstone) -> None:
    client = user(stack)
    real = client.cookies[COOKIE]
    me, _, signature = real.partition(".")
    someone_else = ("0" if me[0] != "0" else "1") + me[1:]
    for forged in (f"{someone_else}.{signature}", f"{me}.{signature[:-2]}AA", me):
        stranger = client_for(stack.url)
        stranger.cookies.set(COOKIE, forged)
        refused = post(stranger, "let me in")
        assert refused.status_code == 403, refused.text
        assert "signature does not match" in refused.json()["detail"]
        assert stranger.get("/api/session").status_code == 403
    nobody = httpx2.post(f"{stack.url}/api/chat", json={"message": "hi"})
    assert nobody.status_code == 401 and "No session cookie" in nobody.json()["detail"]
    assert redis_keys(stack, f"*{someone_else}*") == [] and redis_keys(stack, f"*{me}*") == []


def test_history_is_capped_and_other_users_cannot_read_it(stack: Capstone) -> None:
    client = user(stack)
    conversation = None
    for n in range(4):
        body = post(client, f"turn {n}", conversation=conversation).json()
        conversation = body["conversation"]
        client.post(f"/{body['stop']}")
    saved = client.get(f"/api/conversations/{conversation}").json()["messages"]
    assert len(saved) == 6 and saved[0]["content"] == "turn 1"  # the oldest two dropped
    assert user(stack).get(f"/api/conversations/{conversation}").json()["messages"] == []


def test_a_repeated_idempotency_key_returns_the_same_reply(stack: Capstone) -> None:
    client = user(stack)
    headers = {"Idempotency-Key": "retry-after-a-502"}
    first = client.post("/api/chat", json={"message": "once"}, headers=headers)
    second = client.post("/api/chat", json={"message": "once"}, headers=headers)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["reply"] == second.json()["reply"]
    client.post(f"/{first.json()['stop']}")


def test_health_readiness_heartbeats_and_metrics(stack: Capstone) -> None:
    for name, worker in stack.workers.items():
        assert httpx2.get(f"{worker.url}/healthz").json() == {"status": "ok", "worker": name}
        assert httpx2.get(f"{worker.url}/readyz").json()["status"] == "ready"
    client = user(stack)
    body = post(client, "count me").json()
    with client.stream("GET", f"/{body['events']}") as response:  # open: the gauge shows it
        worker = response.headers["x-worker"]
        chunks = response.iter_bytes()  # read on without `break`, which closes the connection
        received = next(chunks)
        while b'"delta"' not in received:  # to the first token: the worker has relayed one
            received += next(chunks)
        assert stack.metrics(worker)["capstone_open_streams"] >= 1
    metrics = stack.metrics(body["worker"])
    assert metrics["capstone_tokens_relayed_total"] >= 1
    assert metrics["capstone_time_to_first_token_seconds_count"] >= 1
    client.post(f"/{body['stop']}")


def test_a_killed_worker_s_reply_is_finished_by_the_other_with_every_token_once(
    stack: Capstone,
) -> None:
    client = user(stack)
    body = post(client, "survive a SIGKILL").json()
    owner = stack.workers[body["worker"]]
    events = read(client, body["events"], stop_after=8)
    owner.kill()
    try:
        events = read_to_end(client, body["events"], events)
        assert_exact_reply(events, "survive a SIGKILL", body["seed"])
        owners = [json.loads(e.data) for e in events if e.event == "owner"]
        assert owners[0]["worker"] == body["worker"] and owners[-1]["takeover"] is True
        survivor = next(n for n in stack.workers if n != body["worker"])
        assert stack.metrics(survivor)["capstone_takeovers_total"] >= 1
    finally:
        owner.restart()


def test_one_worker_holds_more_streams_than_redis_py_s_default_pool() -> None:
    """Each waiting stream holds a Redis connection; redis-py's pool stops at 100 by default."""
    fake = {"FAKE_OPENAI_TPS": "10", "FAKE_OPENAI_TOKENS": str(TOKENS)}
    with start_capstone(workers=1, env={"MAX_STREAMS": "200"}, fake_env=fake) as alone:
        held_by_one_worker(alone)


def held_by_one_worker(stack: Capstone) -> None:
    client = user(stack)
    body = post(client, "many readers").json()
    worker = stack.workers[body["worker"]]

    async def first_events(n: int) -> list[int]:
        limits = httpx2.Limits(max_connections=n)
        cookies = {COOKIE: client.cookies[COOKIE]}
        async with httpx2.AsyncClient(base_url=worker.url, cookies=cookies, limits=limits,
                                     timeout=DEADLINE) as many:  # fmt: skip
            all_open = asyncio.Barrier(n)

            async def one() -> int:
                async with many.stream("GET", f"/{body['events']}") as response:
                    if response.status_code == 200:
                        chunks = response.aiter_bytes()
                        assert b"event: owner" in await anext(chunks)
                    await asyncio.wait_for(all_open.wait(), DEADLINE)  # all open at once
                    return response.status_code

            return await asyncio.gather(*(one() for _ in range(n)))

    assert asyncio.run(first_events(120)) == [200] * 120
    client.post(f"/{body['stop']}")


def test_an_adopter_that_cannot_repeat_the_text_ends_the_reply_with_an_error(
    stack: Capstone,
) -> None:
    """What a real model does on a takeover (OpenAI's seed is best effort), injected: the
    text already sent is changed in Redis, so the re-asked model's tokens no longer match."""
    client = user(stack)
    body = post(client, "a model that changes its mind").json()
    owner = stack.workers[body["worker"]]
    events = read(client, body["events"], stop_after=5)
    store = redis_sync.Redis.from_url(stack.redis.url, decode_responses=True)
    try:
        owner.kill()  # first, so it appends no more; then the text it "sent" is changed
        store.set(f"cap:gen:{body['reply']}:text", "Something else entirely, long ago.")
    finally:
        store.close()
    try:
        events = read_to_end(client, body["events"], events)
        assert events[-1].event == "error"
        assert "did not repeat the first" in json.loads(events[-1].data)["message"]
        pieces = tokens(events)  # what was sent stays, exactly, and nothing was spliced on
        assert [p["i"] for p in pieces] == list(range(len(pieces)))
        text = "".join(str(p["delta"]) for p in pieces)
        assert reply_for("a model that changes its mind", body["seed"], TOKENS).startswith(text)
    finally:
        owner.restart()


def test_an_upstream_that_refuses_is_an_error_event_and_a_metric() -> None:
    fake = {"FAKE_OPENAI_STATUS": "503"}
    with start_capstone(workers=1, env={"RELAY_MAX_RETRIES": "0"}, fake_env=fake) as alone:
        client = user(alone)
        body = post(client, "anyone there?").json()
        events = read(client, body["events"])
        assert events[-1].event == "error"
        assert "answered 503" in json.loads(events[-1].data)["message"]
        assert alone.metrics("A")['capstone_upstream_errors_total{kind="503"}'] == 1
        saved = client.get(f"/api/conversations/{body['conversation']}").json()["messages"]
        assert saved[-1]["status"] == "error"


def test_the_page_uses_relative_urls_text_only_and_gives_a_session(stack: Capstone) -> None:
    page = httpx2.get(f"{stack.url}/")
    assert '<script type="module" src="capstone.js">' in page.text  # relative: works behind a proxy
    assert "HttpOnly" in page.headers["set-cookie"] and "SameSite=Lax" in page.headers["set-cookie"]
    script = httpx2.get(f"{stack.url}/capstone.js").text
    assert "innerHTML" not in script.replace("never innerHTML", "")
    assert 'import("./sse.js")' in script and 'fetch("/' not in script and "fetch(`/" not in script
    forged = httpx2.get(f"{stack.url}/", cookies={COOKIE: "0" * 32 + ".forged"})
    assert forged.headers["set-cookie"].startswith(f"{COOKIE}=")  # the page replaces it


def test_a_worker_stopped_gracefully_hands_its_replies_over() -> None:
    """A deploy: SIGTERM. The worker releases its leases as it shuts down, so the other adopts
    its replies at the next sweep instead of after a whole lease.

    The lease here (120 s) outlives the test's deadline: a takeover within the deadline can only
    come from the release, so the test fails if shutdown stops releasing (shown once by making
    `Replies.release` return early: "the reply never finished")."""
    fake = {"FAKE_OPENAI_TPS": "10", "FAKE_OPENAI_TTFT": "0.2", "FAKE_OPENAI_TOKENS": str(TOKENS)}
    settings = SETTINGS | {"LEASE_SECONDS": "120"}
    assert float(settings["LEASE_SECONDS"]) > 2 * DEADLINE
    with start_capstone(workers=2, env=settings, fake_env=fake) as deploy:
        client = user(deploy)
        body = post(client, "survive a deploy").json()
        owner = deploy.workers[body["worker"]]
        events = read(client, body["events"], stop_after=5)
        owner.stop()
        unfinished = "never finished: was the lease released?"
        events = read_to_end(client, body["events"], events, unfinished)
        assert_exact_reply(events, "survive a deploy", body["seed"])
        owners = [json.loads(e.data) for e in events if e.event == "owner"]
        assert owners[-1]["takeover"] is True and owners[-1]["worker"] != body["worker"]
