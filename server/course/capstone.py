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
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self

import httpx2

from server.course.cluster import upstreams
from server.course.launcher import Server, start_app, start_nginx, start_redis
from server.course.nginx import sse_proxy

APP = "server.apps.capstone:app"
FAKE = "server.apps.fake_openai:app"
# Heartbeats every 15 s (the app's default) fit well under this; lesson 08 measured why.
LOCATION = sse_proxy(read_timeout="60s") + "\nproxy_set_header X-Request-ID $request_id;"


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
) -> Capstone:
    """Start Redis, the fake model, `workers` workers named A, B,
    C... and nginx in front; stop what started if a later step fails.

    ``fake_upstream=False``: no fake model; the workers use ``.env``'s upstream."""
    if not 1 <= workers <= len(string.ascii_uppercase):
        raise ValueError(f"workers must be 1-26, got {workers}")
    started: list[Server] = []
    try:
        redis = start_redis()
        started.append(redis)
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
                args=("--no-access-log",),
            )
            started.append(running[name])
        nginx = start_nginx(
            upstreams(running), location=LOCATION, worker_connections=worker_connections
        )
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    return Capstone(redis, fake, running, nginx, secret)
