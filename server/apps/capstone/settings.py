"""The capstone's settings, from the environment (or `.env`), each with a production default.

Every worker of one deployment must get the same values, `SESSION_SECRET` above all: a cookie
signed by one worker is checked by whichever worker the load balancer picks next.

==========================  =========  ====================================================
variable                    default    meaning
==========================  =========  ====================================================
``REDIS_URL``               required   history, reply streams, leases, limits
``SESSION_SECRET``          random     HMAC key of the session cookie (random: one worker only)
``WORKER_NAME``             the pid    names this worker in ``X-Worker`` and the logs
``HEARTBEAT``               15         seconds of silence before a ``: ping`` (below 60 s, the
                                       ALB's and nginx's usual idle timeouts)
``LEASE_SECONDS``           3          a generation whose owner stops renewing for this long
                                       is adopted by another worker
``SWEEP_SECONDS``           0.5        how often each worker looks for such orphans
``MAX_TAKEOVERS``           3          adoptions before a reply is given up (an error event)
``MAX_ACTIVE``              3          replies one user may have generating at once
``MAX_STREAMS``             6          reply streams one user may hold open on one worker
``MAX_WORKER_STREAMS``      2000       reply streams one worker holds open in all, whoever the
                                       users (a cookie costs one GET: a per-user limit alone
                                       lets one client with many cookies hold thousands)
``RATE_PER_MINUTE``         20         messages one user may send per minute
``MAX_MESSAGE_CHARS``       4000       characters in one message (more: 413)
``MAX_BODY_BYTES``          16384      bytes in one request body (more: 413)
``HISTORY_CAP``             50         messages kept per conversation
``UPSTREAM_HISTORY``        20         of those, how many go to the model with a new message
``REPLY_TTL``               3600       seconds a finished reply and its stream are kept
``SEND_TIMEOUT``            10         seconds a client may refuse bytes before it is dropped
``REDIS_CONNECTIONS``       10000      this worker's Redis connections, at most: one per open
                                       stream while it waits, plus a few (redis-py's default,
                                       100, refuses the 101st stream)
``RETRY_MS``                1000       the ``retry:`` sent with each stream's first event
``MAX_STREAM_SECONDS``      300        a reply stream ends after this long, cleanly, and the
                                       client resumes from its last id: behind a proxy that
                                       never says the tab closed (jupyter-server-proxy), a
                                       stream nobody reads is held this long at most
``MAX_REPLY_SECONDS``       600        a generation that runs longer ends with an error event
                                       (the upstream's cost, whether anyone reads or not); a
                                       takeover starts the clock again, so a reply lasts at
                                       most (MAX_TAKEOVERS + 1) times this
``SESSION_MAX_AGE``         2592000    seconds a session cookie is accepted after it was made
                                       (30 days; the server checks, not only the browser)
==========================  =========  ====================================================

The upstream model (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``OPENAI_MODEL``,
``RELAY_TIMEOUT``, ``RELAY_MAX_RETRIES``) is read by `server.llm.config`, as lesson 06's relay
reads it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields

from server.settings import number


@dataclass(frozen=True)
class Settings:
    redis_url: str = ""
    session_secret: str = ""
    worker: str = ""
    heartbeat: float = 15.0
    lease_seconds: float = 3.0
    sweep_seconds: float = 0.5
    max_takeovers: int = 3
    max_active: int = 3
    max_streams: int = 6
    max_worker_streams: int = 2000
    rate_per_minute: int = 20
    max_message_chars: int = 4000
    max_body_bytes: int = 16384
    history_cap: int = 50
    upstream_history: int = 20
    reply_ttl: int = 3600
    send_timeout: float = 10.0
    retry_ms: int = 1000
    redis_connections: int = 10_000
    max_stream_seconds: float = 300.0
    max_reply_seconds: float = 600.0
    session_max_age: int = 30 * 24 * 3600

    @property
    def secret_is_random(self) -> bool:
        return self.session_secret.startswith("random:")

    @classmethod
    def from_env(cls, env: Mapping[str, str | None]) -> Settings:
        """The settings in `env`; a missing `REDIS_URL` or a malformed number raises
        `ValueError` naming the variable."""
        redis_url = (env.get("REDIS_URL") or "").strip()
        if not redis_url:
            raise ValueError("REDIS_URL is not set: the capstone keeps everything in Redis")
        secret = (env.get("SESSION_SECRET") or "").strip()
        values: dict[str, object] = {
            "redis_url": redis_url,
            "session_secret": secret or f"random:{secrets.token_hex(32)}",
            "worker": (env.get("WORKER_NAME") or "").strip() or str(os.getpid()),
        }
        defaults = cls()
        for field in fields(cls):
            if field.name not in values:
                default = getattr(defaults, field.name)
                low = 1 if isinstance(default, int) else 0.01  # every number here is > 0
                values[field.name] = number(env, field.name.upper(), default, low=low)
        return cls(**values)  # type: ignore[arg-type]  # each value was parsed for its field
