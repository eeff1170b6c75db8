"""Where the relay's tokens come from, and how long it waits for them: read from the environment.

Everything comes from the environment or a ``.env`` file (python-dotenv; the environment wins).

The upstream:

- ``OPENAI_BASE_URL`` set: that OpenAI-compatible server. The course's local model is
  started by the notebook or the test, next to the relay (``llm = start_app(
  "server.apps.fake_openai:app")``, then ``OPENAI_BASE_URL=f"{llm.url}/v1"`` in the relay's
  environment); Ollama is ``http://localhost:11434/v1``, vLLM ``http://localhost:8000/v1``.
  The key is ``OPENAI_API_KEY``, or a placeholder if unset, since local servers ignore it.
- only ``OPENAI_API_KEY`` set: OpenAI itself.
- neither: `NoUpstreamError`, whose message says what to set. The relay never starts a model
  server of its own: that would be one more process per web worker, started from inside a
  server that is itself supervised, and stopped by nobody when a worker is killed.

``OPENAI_MODEL`` names the model (default ``gpt-4o-mini``).

How long it waits (`Settings`); the `openai` client's own defaults, a 600 s timeout and two
silent retries, are not what a browser waiting on a stream wants:

- ``RELAY_HEARTBEAT`` (15 s, 0.05-3600): after this long with nothing to send, the relay sends
  the browser a comment line, so that a proxy does not take the silence of a slow model for a
  dead connection (nginx's ``proxy_read_timeout`` is 60 s by default: lesson 08).
- ``RELAY_TIMEOUT`` (60 s, 0.1-3600): the longest wait for the upstream, once connected, for its
  answer or for the next piece of a stream; connecting gets at most 10 s of it.
- ``RELAY_MAX_RETRIES`` (1, 0-10): how often the client retries a request that failed before its
  stream began (connection error, 408, 409, 429, 5xx), waiting as the server asks. A stream
  that has begun is never retried: that would run, and bill, the whole generation again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from dotenv import dotenv_values, find_dotenv

from server.llm.upstream import Upstream
from server.settings import number

DEFAULT_MODEL = "gpt-4o-mini"
LOCAL_KEY = "sk-local-no-key-needed"
CONNECT_TIMEOUT = 10.0  # at most: a server that does not accept within this is not there


class NoUpstreamError(RuntimeError):
    """Nothing says which LLM to relay: neither ``OPENAI_BASE_URL`` nor ``OPENAI_API_KEY``."""


@dataclass(frozen=True)
class Settings:
    """How long the relay waits: see the module's docstring."""

    heartbeat: float = 15.0
    timeout: float = 60.0
    max_retries: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str | None]) -> Settings:
        """The ``RELAY_*`` settings; a malformed one raises `ValueError` naming it."""
        defaults = cls()
        return cls(
            heartbeat=number(env, "RELAY_HEARTBEAT", defaults.heartbeat, low=0.05, high=3600),
            timeout=number(env, "RELAY_TIMEOUT", defaults.timeout, low=0.1, high=3600),
            max_retries=number(env, "RELAY_MAX_RETRIES", defaults.max_retries, low=0, high=10),
        )


def read_env(dotenv: str | None = None) -> dict[str, str | None]:
    """``os.environ`` on top of the nearest ``.env`` file (`dotenv` to name another one)."""
    path = dotenv if dotenv is not None else find_dotenv(usecwd=True)
    return {**(dotenv_values(path) if path else {}), **os.environ}


def upstream_from_env(
    env: Mapping[str, str | None] | None = None, dotenv: str | None = None
) -> Upstream:
    """The configured upstream; `NoUpstreamError` if there is none.

    `env` defaults to `read_env(dotenv)`: the environment over the nearest ``.env`` file.
    """
    if env is None:
        env = read_env(dotenv)
    base_url = (env.get("OPENAI_BASE_URL") or "").strip() or None
    key = (env.get("OPENAI_API_KEY") or "").strip()
    model = (env.get("OPENAI_MODEL") or "").strip() or DEFAULT_MODEL
    if base_url:
        return Upstream(base_url, key or LOCAL_KEY, model, f"the server at {base_url}")
    if key:
        return Upstream(None, key, model, "OpenAI (api.openai.com)")
    raise NoUpstreamError(
        "No LLM to relay: OPENAI_BASE_URL and OPENAI_API_KEY are both unset. Set "
        "OPENAI_BASE_URL to an OpenAI-compatible server (the course's local model: "
        "llm = start_app('server.apps.fake_openai:app'), then OPENAI_BASE_URL=f'{llm.url}/v1' "
        "in the relay's env; Ollama: http://localhost:11434/v1), or set OPENAI_API_KEY to "
        "use OpenAI, in the environment or in .env."
    )
