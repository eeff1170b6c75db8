"""The capstone against hostile input: a mangled session cookie and hostile bodies, never a 500.

A session cookie whose signature holds a non-ASCII byte used to be a 500 on every endpoint,
`GET /` included, so the page meant to hand out a fresh cookie could not (`hmac.compare_digest`
raises `TypeError` on a non-ASCII `str`). Through nginx some came back 502.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx2
import pytest

from server.apps.capstone.session import COOKIE
from server.course.capstone_stack import Capstone, start_capstone

pytestmark = [pytest.mark.nginx, pytest.mark.redis]


MAX_STREAMS = 3
MAX_WORKER_STREAMS = 5


@pytest.fixture(scope="module")
def stack() -> Iterator[Capstone]:
    slow = {"FAKE_OPENAI_TPS": "4", "FAKE_OPENAI_TOKENS": "12"}  # a reply streams for ~3 s
    env = {
        "MAX_STREAMS": str(MAX_STREAMS),
        "MAX_WORKER_STREAMS": str(MAX_WORKER_STREAMS),
        "MAX_ACTIVE": "10",
    }
    with start_capstone(workers=1, env=env, fake_env=slow) as running:
        yield running


@pytest.fixture
def client(stack: Capstone) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=stack.url, timeout=30) as client:
        yield client


def test_a_cookie_with_a_non_ascii_signature_is_refused_and_replaced(
    client: httpx2.Client,
) -> None:
    user = client.get("/api/session").json()["user"]
    mangled = {b"cookie": f"{COOKIE}={user}.".encode() + "é".encode("latin-1") * 64}
    assert client.get("/api/session", headers=mangled).status_code == 403
    chat = client.post("/api/chat", json={"message": "hi"}, headers=mangled)
    assert chat.status_code == 403 and "signature" in chat.text
    page = client.get("/", headers=mangled)
    assert page.status_code == 200 and COOKIE in page.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b'{"message": "\\ud800"}', 400, "lone surrogate"),
        (b"[" * 3000 + b"]" * 3000, 400, "nested 3000 deep"),
        ('{"message": "café"}'.encode("latin-1"), 400, "not valid UTF-8"),
        (json.dumps({"message": "x" * 1_000_000}).encode(), 413, "too large"),
    ],
)
def test_a_hostile_chat_body_is_a_4xx_that_says_why(
    client: httpx2.Client, body: bytes, status: int, reason: str
) -> None:
    client.get("/api/session")
    response = client.post("/api/chat", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and reason in response.text, response.text[:300]


def test_the_open_stream_limit_holds_under_simultaneous_requests(
    stack: Capstone, client: httpx2.Client
) -> None:
    """The count used to be taken in the endpoint but raised when the body started (later, in
    another task): 40 simultaneous GETs opened far more streams than the limit allowed.
    Straight to the worker: nginx in front passes requests on a few at a time."""
    client.get("/api/session")
    events = client.post("/api/chat", json={"message": "hi"}).json()["events"]

    async def open_many(count: int) -> list[int]:
        async with httpx2.AsyncClient(
            base_url=stack.workers["A"].url, cookies=client.cookies, timeout=30
        ) as many:
            statuses: list[int] = []
            opened = asyncio.Event()

            async def one() -> None:
                async with many.stream("GET", events) as response:
                    statuses.append(response.status_code)
                    if len(statuses) == count:
                        opened.set()
                    await opened.wait()  # hold every stream until all have an answer

            await asyncio.gather(*(one() for _ in range(count)))
            return statuses

    statuses = asyncio.run(open_many(40))
    assert statuses.count(200) == MAX_STREAMS and statuses.count(429) == 40 - MAX_STREAMS, sorted(
        statuses
    )


def test_a_reconnection_after_the_last_event_ends_at_once(client: httpx2.Client) -> None:
    """A page that forgets to close its EventSource reconnects with the `done` event's id: it
    used to be held open with pings for the reply's whole hour in Redis."""
    client.get("/api/session")
    events = client.post("/api/chat", json={"message": "hi"}).json()["events"]
    with client.stream("GET", events) as response:
        ids = [line[4:] for line in response.iter_lines() if line.startswith("id: ")]
    for last, status, says in [(ids[-1], 204, ""), ("99999999999999-0", 400, "not issued by")]:
        with client.stream("GET", events, headers={"Last-Event-ID": last}) as response:
            assert response.status_code == status  # (a held stream would be a 200)
            assert says in response.read().decode()


def test_a_chat_post_that_is_not_json_is_refused(client: httpx2.Client) -> None:
    """A plain HTML form on another origin can post `text/plain` without a preflight; its body
    used to be parsed as JSON all the same, into the victim's conversation."""
    client.get("/api/session")
    body = b'{"message": "posted by a form"}'
    for kind in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": kind} if kind else {}
        response = client.post("/api/chat", content=body, headers=headers)
        assert response.status_code == 415, (kind, response.text)
        assert "application/json" in response.json()["detail"]


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_chat_post_from_another_origin_is_refused_and_says_why(
    client: httpx2.Client, site: str
) -> None:
    """SameSite=Lax stops other sites, not another port of the same host (on a shared hub every
    learner's app is one site): the browser's Sec-Fetch-Site says where the request came from."""
    client.get("/api/session")
    for path in ("/api/chat", "/api/replies/" + "0" * 32 + "/stop"):
        response = client.post(path, json={"message": "hi"}, headers={"sec-fetch-site": site})
        assert response.status_code == 403, (path, response.text)
        assert response.json()["error"] == "cross_origin"
        assert site in response.json()["detail"] and "page" in response.json()["detail"]


@pytest.mark.parametrize("site", ["same-origin", "none", None])
def test_a_chat_post_from_the_page_itself_or_a_script_is_accepted(
    client: httpx2.Client, site: str | None
) -> None:
    """The page's own fetch sends `same-origin`; a typed URL `none`; curl and httpx nothing."""
    client.get("/api/session")
    headers = {"sec-fetch-site": site} if site else {}
    response = client.post("/api/chat", json={"message": "hi"}, headers=headers)
    assert response.status_code == 202, response.text


def test_a_worker_holds_at_most_max_worker_streams_whatever_the_cookies(stack: Capstone) -> None:
    """The per-user limit counts per cookie, and a cookie costs one anonymous GET: one client
    with 25 cookies held 300 streams (and 300 Redis connections). Three users open two streams
    each, straight to the worker: five are served, the sixth is a 503 naming the limit."""
    users = []
    for _ in range(3):
        with httpx2.Client(base_url=stack.url, timeout=30) as one:
            one.get("/api/session")
            events = one.post("/api/chat", json={"message": "hi"}).json()["events"]
            users.append((one.cookies, events))

    async def open_all() -> list[tuple[int, str]]:
        answers: list[tuple[int, str]] = []
        opened = asyncio.Event()

        async def one(client: httpx2.AsyncClient, events: str) -> None:
            async with client.stream("GET", events) as response:
                body = "" if response.status_code == 200 else (await response.aread()).decode()
                answers.append((response.status_code, body))
                if len(answers) == 2 * len(users):
                    opened.set()
                await opened.wait()  # hold every stream until all have an answer

        clients = [
            httpx2.AsyncClient(base_url=stack.workers["A"].url, cookies=jar, timeout=30)
            for jar, _ in users
        ]
        try:
            pairs = zip(clients, users, strict=True)
            await asyncio.gather(*(one(c, events) for c, (_, events) in pairs for _ in "ab"))
        finally:
            for client in clients:
                await client.aclose()
        return answers

    answers = asyncio.run(open_all())
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * MAX_WORKER_STREAMS + [503], answers
    refused = next(body for status, body in answers if status == 503)
    assert "MAX_WORKER_STREAMS" in refused


def test_a_malformed_idempotency_key_is_the_shared_rule_s_400(client: httpx2.Client) -> None:
    """One rule for every app (server.idempotency): the capstone had its own, answering 422."""
    client.get("/api/session")
    bad = {"Idempotency-Key": "not a key!"}
    response = client.post("/api/chat", json={"message": "hi"}, headers=bad)
    assert response.status_code == 400 and response.json()["error"] == "bad_request"
    assert "Idempotency-Key must be 1 to 64" in response.json()["detail"]
