"""Stage 4's check catches the mistakes a learner plausibly makes, each at its own behaviour.

Each test copies the reference project, breaks one thing in its relay or its page, and runs the
real check: it must fail, and at the behaviour that the mistake breaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course.stages import check_stage
from tests.stage_checks import broken, reference_and_stubs

pytestmark = [pytest.mark.browser, pytest.mark.stage]

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(4)

# The seeds' relay: a sync generator over the sync client (lesson 06, section 7), made async for
# `with_heartbeats` by Starlette's thread pool. When the client leaves, nothing closes it.
SYNC_RELAY = """def relay_sync(message: str) -> Iterator[bytes]:
    usage = None
    try:
        stream = openai.OpenAI().chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": message}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage.model_dump(exclude_none=True)
            for choice in chunk.choices:
                if choice.delta.content:
                    yield encode_json({"delta": choice.delta.content})
    except openai.OpenAIError as error:
        yield encode_json({"message": str(error)}, event="error")
    else:
        yield encode_json({"usage": usage}, event="done")


async def relay(message: str) -> AsyncIterator[bytes]:
    async for event in iterate_in_threadpool(relay_sync(message)):
        yield event
"""

# (what the learner got wrong, the file, the reference's text, theirs, the behaviour that misses)
MISTAKES = [
    (
        "no heartbeats",
        "chat.py",
        "with_heartbeats(relay(message), HEARTBEAT)",
        "relay(message)",
        "while the model is silent, a comment",
    ),
    (
        "the seeds' sync relay, which never closes the upstream",
        "chat.py",
        "async def relay(message: str) -> AsyncIterator[bytes]:",
        "from collections.abc import Iterator\n"
        "from starlette.concurrency import iterate_in_threadpool\n\n\n"
        f"{SYNC_RELAY}\n\nasync def unused(message: str) -> AsyncIterator[bytes]:",
        "the model stops within a second of the client leaving",
    ),
    (
        "innerHTML for the model's text",
        "static/chat.js",
        "reply.textContent += JSON.parse(event.data).delta;",
        "reply.innerHTML += JSON.parse(event.data).delta;",
        "a reply holding markup",
    ),
    (
        "an absolute URL, which leaves the hub's proxy path",
        "static/chat.js",
        'fetch("chat", {',
        'fetch("/chat", {',
        "pressing Enter POSTs it to chat (relative)",
    ),
    (
        "a reply too pale to read (axe-core: color-contrast, serious)",
        "static/chat.html",
        '<p id="reply" aria-live="polite">',
        '<p id="reply" aria-live="polite" style="color: #bbb">',
        "axe-core finds nothing serious",
    ),
]


@pytest.mark.parametrize(
    ("path", "right", "wrong", "missed"),
    [pytest.param(*rest, id=name) for name, *rest in MISTAKES],
)
def test_a_mistake_fails_at_its_behaviour(
    path: str,
    right: str,
    wrong: str,
    missed: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = broken(tmp_path, path, (right, wrong))
    assert not check_stage(4, folder)
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("❌")]
    assert len(failed) == 1 and missed in failed[0], out
