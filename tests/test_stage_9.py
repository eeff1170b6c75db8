"""Stage 9's check catches the mistakes a learner plausibly makes, each at its own behaviour.

Each test copies the reference project, breaks one thing in its replies.py and runs the stage's
check on it: the check must fail, and at the behaviour that the mistake breaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stage_checks import broken, first_miss, reference_and_stubs

pytestmark = [pytest.mark.nginx, pytest.mark.redis, pytest.mark.stage]

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(9)

ADOPTION = """            if await redis.set(f"{key}:lease", WORKER, px=LEASE_MS, nx=True):
                spawn(generate(reply, prompt, skip=await redis.xlen(key)))
"""
COUNT_IN_REDIS = (
    "    counting = redis.pipeline().set(flood, 0, ex=WINDOW, nx=True).incr(flood).ttl(flood)\n"
    "    _, sent, wait = await counting.execute()  # one transaction: the window always expires\n"
)
COUNT_IN_MEMORY = """    sent = seen[flood] = seen.get(flood, 0) + 1
    wait = WINDOW
"""
TASKS = "tasks: set[asyncio.Task[None]] = set()"
ENDED = "            return Response(status_code=204)"

# (what the learner got wrong, [(the reference's text, theirs)], the behaviour that must miss)
MISTAKES = [
    (
        "streams on after the `done` entry",
        [('            if "event" in fields:\n                return\n', "")],
        "streams the model's exact reply",
    ),
    (
        "no heartbeat while the model is silent",
        [('            yield comment("ping")\n', "")],
        "while the model is silent",
    ),
    (
        "holds a reconnection after `done` open with pings",
        [(ENDED, "            pass")],
        "a reconnection with the `done` event's own id",
    ),
    (
        "counts a user's messages in the worker's memory",
        [(COUNT_IN_REDIS, COUNT_IN_MEMORY), (TASKS, TASKS + "\nseen: dict[str, int] = {}")],
        "a flood from one user is refused",
    ),
    (
        "never takes over a reply whose worker died",
        [(ADOPTION, "")],
        "worker A SIGKILLed mid-reply",
    ),
]


@pytest.mark.parametrize(
    ("changes", "missed"),
    [pytest.param(*rest, id=name) for name, *rest in MISTAKES],
)
def test_a_mistake_fails_at_its_behaviour(
    changes: list[tuple[str, str]],
    missed: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    failed, out = first_miss(9, broken(tmp_path, "replies.py", *changes), capsys)
    assert missed in failed, out
