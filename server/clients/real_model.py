"""Seed 002's real-model path: the same lesson cells against your own model, or skipped.

Every lesson cell that must give the same output on every machine talks to the course's local
model. The few cells that measure *your* model ask `configured()` first: with
``OPENAI_API_KEY`` in ``.env`` (the nearest one above the notebook's folder) or in the
environment, they call OpenAI; with ``OPENAI_BASE_URL`` too, the OpenAI-compatible server it
names (a gateway such as the Bedrock Access Gateway, Ollama, vLLM). With neither, the cell
prints `SKIPPED` and goes on, which is what CI, with no key, runs. The rules are the relay's
own (`server.llm.config.upstream_from_env`), so a cell and the relay never disagree on which
model they use.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import openai

from server.clients.llm_stream import Timeline, timed
from server.llm.config import NoUpstreamError, upstream_from_env
from server.llm.upstream import Upstream

SKIPPED = (
    "Skipped: no model of your own is configured. Put OPENAI_API_KEY=sk-... in a .env file "
    "at the top of the course (or OPENAI_BASE_URL for an OpenAI-compatible server) and run "
    "this cell again; every other cell runs on the local model."
)


def configured(env: Mapping[str, str | None] | None = None) -> Upstream | None:
    """Your model, by the relay's rules (`env` defaults to the environment over ``.env``);
    None if none is configured."""
    try:
        return upstream_from_env(env)
    except NoUpstreamError:
        return None


def client_for(upstream: Upstream, timeout: float = 60.0) -> openai.OpenAI:
    """A sync `openai` client for `upstream`, with a timeout a notebook cell can wait out."""
    return openai.OpenAI(
        base_url=upstream.base_url, api_key=upstream.api_key, timeout=timeout, max_retries=1
    )


def time_reply(upstream: Upstream, prompt: str) -> Timeline:
    """Stream one reply to `prompt` from `upstream`, noting when each piece of text arrived."""
    with client_for(upstream) as client:
        started = time.perf_counter()
        stream = client.chat.completions.create(
            model=upstream.model, messages=[{"role": "user", "content": prompt}], stream=True
        )
        with stream:
            timeline, _ = timed(stream, started)
    return timeline


def report(prompt: str, env: Mapping[str, str | None] | None = None) -> str:
    """What the lesson's real-model cell prints: `SKIPPED`, the failure, or the reply timed."""
    upstream = configured(env)
    if upstream is None:
        return SKIPPED
    try:
        timeline = time_reply(upstream, prompt)
    except openai.APIError as error:  # a rejected key, no such model, no server there ...
        return f"{upstream.label} failed: {type(error).__name__}: {error}"
    return (
        f"{''.join(timeline.pieces)[:300]}\n{upstream.label}, model {upstream.model}: "
        f"first token after {timeline.ttft:.2f} s, all after {timeline.total:.2f} s"
    )


def relay_env(upstream: Upstream) -> dict[str, str]:
    """The environment that points the relay app at `upstream` (the environment wins over
    any ``.env`` the relay would read)."""
    return {
        "OPENAI_BASE_URL": upstream.base_url or "",  # empty: the client's default, OpenAI
        "OPENAI_API_KEY": upstream.api_key,
        "OPENAI_MODEL": upstream.model,
    }
