"""The upstream model: where it is, what its errors mean to a learner, and closing its response.

Shared by the apps that call an OpenAI-compatible upstream (lesson 06's relay, the capstone).
Closing the upstream response is what stops the generation (and the bill) when nobody reads
it any more, so it is written once, shielded and bounded, here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio
import openai
from openai import AsyncAPIResponse, AsyncStream

log = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class Upstream:
    """The OpenAI-compatible server the relay asks, and how it says so to the learner."""

    base_url: str | None  # None: the client's default, OpenAI
    api_key: str
    model: str
    label: str


CLOSE_TIMEOUT = 5.0  # seconds to close the upstream response; then leave it to the collector


def status_of(error: openai.APIError) -> int | None:
    """The HTTP status behind `error`, if it has one: only `openai.APIStatusError` (a 401, a
    429, ...) does; a broken or timed-out connection, or an error inside a stream, has none."""
    return error.status_code if isinstance(error, openai.APIStatusError) else None


def explain(error: openai.APIError, upstream: Upstream) -> str:
    """A message a learner can act on, for an error before the first token."""
    if isinstance(error, openai.AuthenticationError):
        return (
            f"{upstream.label} rejected the API key (401). Set OPENAI_API_KEY in .env or in "
            "the environment, then restart the relay."
        )
    if isinstance(error, openai.RateLimitError):
        wait = error.response.headers.get("retry-after")
        return f"{upstream.label} is rate limiting (429); try again in {wait or 'a few'} s."
    if isinstance(error, openai.APIStatusError):
        return f"{upstream.label} answered {error.status_code}: {error.message}"
    if isinstance(error, openai.APITimeoutError):
        return f"{upstream.label} did not answer in time (RELAY_TIMEOUT)."
    if isinstance(error, openai.APIConnectionError):
        return f"Could not reach {upstream.label}: is it running? ({error.message})"
    return f"{upstream.label} failed: {error.message}"


async def close_within(response: AsyncAPIResponse[Any] | AsyncStream[Any], seconds: float) -> None:
    """Close the upstream response, which is what stops the generation when the browser left.

    The stream is usually being cancelled right then: the close is shielded, or anyio would
    cancel it too, and bounded, so that an upstream that never lets go cannot hold the
    relay's response open either.
    """
    with anyio.move_on_after(seconds, shield=True) as scope:
        try:
            await response.close()
        except Exception:  # nothing left to tell the browser; the log keeps it
            log.exception("closing the upstream response failed")
    if scope.cancelled_caught:
        log.warning("closing the upstream response took over %g s: abandoned", seconds)
