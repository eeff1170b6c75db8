"""Lesson 11's whole stack from one call: Redis, the fake model, N capstone workers, nginx.

    stack = start_capstone(workers=2)
    stack.url                      # nginx: what a browser or the bench talks to
    stack.workers["A"].pid         # kill one mid-reply: stack.workers["A"].kill()
    stack.metrics("A")             # worker A's /metrics: {"capstone_open_streams": 3.0, ...}
    stack.stop()                   # or `with start_capstone() as stack:`

Everything is started by `server.course.launcher` on free loopback ports, so several stacks
(two notebooks, a test and a bench) never collide, and `stop_all()` stops them all. The
workers share one `SESSION_SECRET` (made here, random per stack) and one Redis; nginx runs
`cluster.upstreams` (no passive health check: a dead worker's connections simply go to the
next one) and adds ``X-Request-ID`` to every request. `fake_env` sets the fake model's pacing
(``FAKE_OPENAI_TTFT``, ``FAKE_OPENAI_TPS``, ``FAKE_OPENAI_TOKENS``), `env` the workers'
settings (`server.apps.capstone.settings`: ``MAX_ACTIVE``, ``RATE_PER_MINUTE``, ...).
``fake_upstream=False`` starts no fake: the workers read ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` from
``.env``, as lesson 06 does.

Where each limit lives (lesson 11 points here). nginx, which sees every client's address but
no user, bounds what one *address* may do (`ClientLimits`): reply streams open at once
(``limit_conn``, 429 over it), chat POSTs per second (``limit_req``, 429 over it), and how long
a client may take to send its headers or body, or to take the bytes sent to it (10 s each:
``client_header_timeout``, ``client_body_timeout``, ``send_timeout``), so a slow or silent
socket is closed instead of held (slowloris); ``/metrics`` is not served through it (scrape
each worker directly: through the balancer it is a random worker's numbers, and public). The
app, which knows the user from the signed cookie, bounds what one *user* may do
(`server.apps.capstone.settings`: ``RATE_PER_MINUTE``, ``MAX_ACTIVE``, ``MAX_STREAMS``,
``MAX_STREAM_SECONDS``, ``SESSION_MAX_AGE``) and what one worker holds (``MAX_WORKER_STREAMS``).
uvicorn has no header timeout of its own, so its workers listen on loopback behind nginx,
never facing clients; its keep-alive timeout (5 s) is above the one nginx keeps idle upstream
connections for (4 s here), so nginx never sends a request on a connection uvicorn is closing.
Redis is bounded by ``maxmemory`` with ``noeviction`` (`start_capstone`'s `redis_maxmemory`):
full, it refuses writes, which the app answers with a 503, rather than silently evicting a
reply's stream or a user's rate-limit window.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self

import httpx2
import redis

from server.course.cluster import upstreams
from server.course.launcher import Server, start_app, start_nginx, start_redis
from server.course.nginx import sse_proxy

APP = "server.apps.capstone:app"
FAKE = "server.apps.fake_openai:app"
# Heartbeats every 15 s (the app's default) fit well under this; lesson 08 measured why.
LOCATION = sse_proxy(read_timeout="60s") + "\nproxy_set_header X-Request-ID $request_id;"
# uvicorn closes an idle connection after 5 s (--timeout-keep-alive, its default, said here):
# nginx lets its idle upstream connections go first, or it may send a request down one uvicorn
# is closing (a 502 for a POST, which nginx does not retry).
UVICORN_KEEPALIVE = 5
UPSTREAM = f"keepalive_timeout {UVICORN_KEEPALIVE - 1}s;"
CLIENT_LIMIT_BODY = (
    '{"detail": "Too many requests or open streams from your address. Wait a moment, or '
    'close a tab.", "error": "client_limit"}'
)


@dataclass(frozen=True)
class ClientLimits:
    """What nginx lets one client address do. The app's limits are per user (a cookie), and a
    cookie costs one GET; these are what one machine may do, however many cookies it holds.
    Several users behind one NAT share them: generous, not a user's fair share."""

    streams: int = 30  # reply streams open at once (five users' worth of MAX_STREAMS)
    chat_per_second: int = 2  # chat POSTs, sustained (the model budget one address may spend)
    chat_burst: int = 30  # chat POSTs at once before the rate applies

    def http(self) -> str:
        """The `http` block's lines: the zones, the statuses, the client timeouts."""
        return "\n".join([
            "limit_conn_zone $binary_remote_addr zone=streams_per_client:10m;",
            f"limit_req_zone $binary_remote_addr zone=chat_per_client:10m "
            f"rate={self.chat_per_second}r/s;",
            "limit_conn_status 429;",
            "limit_req_status 429;",
            "client_header_timeout 10s;  # the whole header, however slowly it trickles",
            "client_body_timeout 10s;    # between two reads of the body",
            "send_timeout 10s;           # between two writes the client accepts",
            "keepalive_timeout 15s;      # an idle client connection, between requests",
            "reset_timedout_connection on;",
        ])  # fmt: skip

    def server(self) -> str:
        """The `server` block's locations: the limited ones, /metrics, the JSON refusal."""
        proxy = f"proxy_pass http://app;\nproxy_set_header Host $host;\n{LOCATION}"
        return f"""error_page 429 = @client_limit;
location @client_limit {{
    default_type application/json;
    add_header Retry-After 1 always;
    return 429 '{CLIENT_LIMIT_BODY}';
}}
location ~ ^/api/replies/[^/]+/events$ {{
    limit_conn streams_per_client {self.streams};
    {proxy.replace(chr(10), chr(10) + "    ")}
}}
location = /api/chat {{
    limit_req zone=chat_per_client burst={self.chat_burst} nodelay;
    {proxy.replace(chr(10), chr(10) + "    ")}
}}
location = /metrics {{  # scraped from each worker; through here, a random worker's
    default_type text/plain;
    return 403 "Scrape /metrics from each worker directly, not through the proxy.\\n";
}}"""


@dataclass
class Capstone:
    """A running stack. `url` is nginx; the rest is there to inspect, kill and restart."""

    redis: Server
    upstream: Server | None
    workers: dict[str, Server]
    nginx: Server
    secret: str = field(repr=False)

    @property
    def url(self) -> str:
        return self.nginx.url

    def browser_url(self, path: str = "/") -> str:
        """The page's URL for the learner's browser (JupyterHub-aware)."""
        return self.nginx.browser_url(path)

    def metrics(self, worker: str) -> dict[str, float]:
        """One worker's ``/metrics``, straight from the worker (not through nginx), as
        ``{"name{labels}": value}`` (no comments, no ``_created`` timestamps)."""
        text = httpx2.get(f"{self.workers[worker].url}/metrics", timeout=10).text
        values = {}
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if line and not line.startswith("#") and "_created" not in name:
                values[name] = float(value)
        return values

    def stop(self) -> None:
        for server in (self.nginx, *self.workers.values(), self.upstream, self.redis):
            if server is not None:
                server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_capstone(
    workers: int = 2,
    *,
    env: Mapping[str, str] | None = None,
    fake_env: Mapping[str, str] | None = None,
    fake_upstream: bool = True,
    worker_connections: int = 1024,
    client_limits: ClientLimits = ClientLimits(),  # frozen: shared safely
    redis_maxmemory: str = "256mb",
) -> Capstone:
    """Start Redis, the fake model, `workers` workers named A, B,
    C... and nginx in front; stop what started if a later step fails.

    ``fake_upstream=False``: no fake model; the workers use ``.env``'s upstream.
    `client_limits` are nginx's per-address limits (a load generator on one address needs
    larger ones); `redis_maxmemory` caps Redis, with ``noeviction`` (see above)."""
    if not 1 <= workers <= len(string.ascii_uppercase):
        raise ValueError(f"workers must be 1-26, got {workers}")
    started: list[Server] = []
    try:
        redis = start_redis()
        started.append(redis)
        bound_memory(redis, redis_maxmemory)
        fake = None
        if fake_upstream:
            fake = start_app(FAKE, env=dict(fake_env or {}), name="fake_openai")
            started.append(fake)
        secret = secrets.token_hex(32)
        settings = {"REDIS_URL": redis.url, "SESSION_SECRET": secret, **(env or {})}
        if fake is not None:
            settings |= {"OPENAI_BASE_URL": f"{fake.url}/v1", "OPENAI_API_KEY": "sk-course"}
        running: dict[str, Server] = {}
        for name in string.ascii_uppercase[:workers]:  # as `cluster.start_workers`, minus
            running[name] = start_app(  # uvicorn's access log: the app's JSON lines are it
                APP,
                env={**settings, "WORKER_NAME": name},
                name=f"worker-{name}",
                args=("--no-access-log", "--timeout-keep-alive", str(UVICORN_KEEPALIVE)),
            )
            started.append(running[name])
        nginx = start_nginx(
            upstreams(running), location=LOCATION, worker_connections=worker_connections,
            upstream=UPSTREAM, http=client_limits.http(), server=client_limits.server(),
        )  # fmt: skip
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    return Capstone(redis, fake, running, nginx, secret)


def bound_memory(server: Server, maxmemory: str) -> None:
    """``maxmemory`` with ``noeviction``: a full Redis refuses writes (the app says 503) and
    never evicts a key. Any eviction policy could drop a reply's stream mid-reply, a lease, or
    the sorted set behind a user's rate limit, each without a word to anyone."""
    with redis.Redis.from_url(server.url) as client:
        client.config_set("maxmemory", maxmemory)
        client.config_set("maxmemory-policy", "noeviction")
