"""Reading a streamed Chat Completion: the reply, its usage, and when its tokens arrived.

A streamed reply comes as many `ChatCompletionChunk` objects: the first carries the role,
each next one a piece of text in ``choices[0].delta.content``, the last one with choices a
``finish_reason``, and, when the request said ``stream_options={"include_usage": True}``, one
more chunk with no choices and the token counts. `assemble_reply` turns that back into what a
non-streamed call returns; `timed` records when each piece arrived, for time-to-first-token
plots. Both work with anything that yields chunks: the `openai` client's stream, a list in a
test, the chunks a relay forwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk


@dataclass
class Reply:
    """A streamed reply put back together."""

    text: str = ""
    finish_reason: str | None = None  # "stop", "length", ... (None: the stream was cut short)
    usage: CompletionUsage | None = None  # only when the request asked for it


def assemble_reply(chunks: Iterable[ChatCompletionChunk]) -> Reply:
    """Join the deltas of a streamed Chat Completion; keep its finish reason and usage."""
    reply = Reply()
    parts = []
    for chunk in chunks:
        if chunk.usage is not None:
            reply.usage = chunk.usage
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # with n > 1 each choice is its own reply; we keep the first
            if choice.delta.content:
                parts.append(choice.delta.content)
            if choice.finish_reason is not None:
                reply.finish_reason = choice.finish_reason
    reply.text = "".join(parts)
    return reply


@dataclass
class Timeline:
    """When each piece of text arrived, in seconds after the request was sent."""

    arrivals: list[float] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    total: float = 0.0  # until the stream ended

    @property
    def ttft(self) -> float:
        """Time to first token: what the user waits before anything appears."""
        return self.arrivals[0] if self.arrivals else self.total


def timed(chunks: Iterable[Any], started: float | None = None) -> tuple[Timeline, list[Any]]:
    """Consume `chunks` (Chat chunks or Responses events), timing each piece of text.

    `started` is the `time.perf_counter()` taken before the request was sent (the call that
    returns the stream already waited for the response headers); by default, now.
    """
    start = time.perf_counter() if started is None else started
    timeline, seen = Timeline(), []
    for chunk in chunks:
        seen.append(chunk)
        for text in _texts(chunk):
            timeline.arrivals.append(time.perf_counter() - start)
            timeline.pieces.append(text)
    timeline.total = time.perf_counter() - start
    return timeline, seen


def _texts(chunk: Any) -> Iterator[str]:
    if getattr(chunk, "type", None) == "response.output_text.delta":
        yield chunk.delta
    for choice in getattr(chunk, "choices", None) or ():
        if choice.delta.content:
            yield choice.delta.content
