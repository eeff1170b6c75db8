"""The fake model itself: what it answers, how fast, and what it counts. No HTTP here.

The model is deterministic: the same prompt and ``seed`` give the same text, and the streamed
deltas always join to exactly the non-streamed text. The seeds' prompt is answered with the
seeds' reply (`server.seed_texts`), one Hangul syllable per token; other prompts get a few
sentences about streaming, at least ``tokens`` tokens long.

`Knobs` are the timing and the faults of one request; `Generation` produces its tokens on an
absolute schedule and counts itself in a `StreamStats` (active, finished, cancelled, failed,
and the tokens sent), which is how a test proves that a client that left stopped it.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from server.seed_texts import PROMPT, REPLY
from server.stream_stats import StreamStats

CANNED = {PROMPT: REPLY, "안녕하세요라고 말해줘": REPLY}  # "say hello"
SENTENCES = (
    "Streaming sends each token as soon as the model produces it.",
    "The first token arrives long before the last one.",
    "Server-Sent Events are plain text over one HTTP response.",
    "Each event ends with a blank line.",
    "A proxy that buffers the response hides all of this.",
    "The browser reads the stream with fetch or EventSource.",
    "Time to first token is what the user feels.",
    "Cancelling a stream early stops the bill for tokens nobody reads.",
    "A relay turns upstream deltas into events for the browser.",
    "Errors after the status line travel inside the stream.",
)
# A token is one Hangul syllable, or a run of other non-space characters, with the spaces
# before it. Joining the tokens gives back the text exactly (the text has no trailing space).
TOKEN = re.compile(r"\s*(?:[\uac00-\ud7a3]|[^\s\uac00-\ud7a3]+)")
GENERATIONS = "generations"  # the name the generations are counted under in `StreamStats`


def tokenize(text: str) -> list[str]:
    """Split `text` into the deltas the fake model streams; ``"".join(tokenize(t)) == t``."""
    return TOKEN.findall(text)


def reply_for(prompt: str, seed: int = 0, tokens: int = 40) -> str:
    """The full reply to `prompt`: canned for the seeds' prompts, else about `tokens` long."""
    if prompt.strip() in CANNED:
        return CANNED[prompt.strip()]
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    rng = random.Random(digest)
    order = rng.sample(SENTENCES, len(SENTENCES))
    sentences: list[str] = []
    count = 0
    while count < tokens:  # whole sentences, at least `tokens` tokens
        sentences.append(order[len(sentences) % len(order)])
        count += len(tokenize(sentences[-1]))
    return " ".join(sentences)


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def last_user_text(messages: str | list[Any]) -> str:
    """The last user message of a conversation (Chat ``messages`` or Responses ``input``)."""
    if isinstance(messages, str):
        return messages
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role", "user") == "user":
            return text_of(message.get("content"))
    return ""


def count_tokens(messages: str | list[Any]) -> int:
    """The prompt's size in tokens, for the usage figures."""
    if isinstance(messages, str):
        return len(tokenize(messages))
    return sum(len(tokenize(text_of(m.get("content")))) for m in messages if isinstance(m, dict))


# --- timing and faults ---------------------------------------------------------------------


def _number(kind: Callable[[str], float], low: float, high: float, *, zero: bool = False) -> Any:
    """A parser for one knob: `kind` of the text, within [low, high] (or exactly 0 if `zero`).

    Every knob has an upper bound: an endless wait (`inf`), a pace that never ends (`1e-300`
    tokens a second) or millions of tokens built before the first byte would hold the server."""

    def parse(raw: str) -> float:
        try:
            value = kind(raw.strip())
        except ValueError:
            value = math.nan
        if not (low <= value <= high or (zero and value == 0)):  # also refuses NaN and inf
            what = "an integer" if kind is int else "a number"
            limit = f"from {low:g} to {high:g}" + (", or 0" if zero else "")
            raise ValueError(f"expected {what} {limit}, got {raw!r}")
        return value

    return parse


@dataclass(frozen=True)
class Knobs:
    """Timing and faults for one request: its headers, over the server's environment."""

    ttft: float = 0.3  # seconds before the first token
    tps: float = 25.0  # tokens per second, 0 = no pacing
    tokens: int = 40  # generated replies are at least this long
    status: int | None = None  # answer with this error status instead
    retry_after: float = 1.0  # seconds, in a 429's Retry-After
    fail_after: int | None = None  # break the stream after this many tokens

    @staticmethod
    def header(name: str) -> str:
        return f"x-fake-{name.replace('_', '-')}"

    @staticmethod
    def variable(name: str) -> str:
        return f"FAKE_OPENAI_{name.upper()}"

    def override(self, values: Mapping[str, str], key: Callable[[str], str]) -> Knobs:
        """These knobs, with those set in `values` (under the names `key` gives) replaced.

        Raises `ValueError` naming the first malformed value; an empty value is unset.
        """
        changes = {}
        for field in fields(self):
            raw = values.get(key(field.name))
            if raw:
                try:
                    changes[field.name] = _PARSERS[field.name](raw)
                except ValueError as error:
                    raise ValueError(f"Invalid {key(field.name)}: {error}.") from None
        return replace(self, **changes)

    def due(self, start: float, index: int) -> float:
        """When token `index` is due (monotonic clock): an absolute schedule, so no drift."""
        return start + self.ttft + (index / self.tps if self.tps > 0 else 0.0)


MAX_TOKENS = 100_000  # about 400 KB of reply, built in a few milliseconds

_PARSERS = {
    "ttft": _number(float, 0, 600),
    "tps": _number(float, 0.1, 100_000, zero=True),  # 0: no pacing
    "tokens": _number(int, 1, MAX_TOKENS),
    "status": _number(int, 400, 599),
    "retry_after": _number(float, 0, 3600),
    "fail_after": _number(int, 0, MAX_TOKENS),
}


# --- one generation ------------------------------------------------------------------------


class InjectedFailure(Exception):
    """Breaks a generation on purpose (``x-fake-fail-after``); `track` counts it as failed."""


class Generation:
    """One reply being generated: its tokens, its pacing, and its entry in the stats."""

    def __init__(self, stats: StreamStats, knobs: Knobs, tokens: list[str]) -> None:
        self.stats, self.knobs, self.tokens = stats, knobs, tokens
        self.start = time.monotonic()
        self.failed = False  # set when the stream broke on purpose (x-fake-fail-after)

    async def wait_until_done(self) -> None:
        """For a non-streamed reply: the client waits for the whole generation."""
        with self.stats.track(GENERATIONS):
            await sleep_until(self.knobs.due(self.start, len(self.tokens)))
            self.stats.add(GENERATIONS, "tokens", len(self.tokens))

    async def stream(self) -> AsyncIterator[str]:
        """Yield the tokens on schedule; stop early, with `failed` set, to break the stream.

        When the client disconnects, Starlette cancels the response, the `await` below raises
        `CancelledError`, and `track` counts the generation as cancelled. That is how a test
        sees a relay stop the upstream.
        """
        sent = 0  # counted here, added once at the end: this loop is the server's hot path
        try:
            with self.stats.track(GENERATIONS):
                for index, token in enumerate(self.tokens):
                    if self.knobs.fail_after is not None and index >= self.knobs.fail_after:
                        raise InjectedFailure
                    await sleep_until(self.knobs.due(self.start, index))
                    sent += 1
                    yield token
        except InjectedFailure:
            self.failed = True
        finally:
            self.stats.add(GENERATIONS, "tokens", sent)


async def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    await asyncio.sleep(max(delay, 0))  # sleep(0) still lets other streams run
