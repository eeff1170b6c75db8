"""Stage 10's check catches the mistakes a learner plausibly makes, each at its own behaviour.

Each test copies the reference project, breaks one thing in its mcp_tool.py and runs the
stage's check on it: the check must fail, and at the behaviour that the mistake breaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stage_checks import broken, first_miss, reference_and_stubs

pytestmark = [pytest.mark.nginx, pytest.mark.redis, pytest.mark.stage]

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(10)

PROGRESS = "            await ctx.report_progress(len(deltas), message=event.data)\n"
KEY = 'f"ask:{user}:{key}"'
JOIN = "    if known:  # this user asked with this key before: join that reply\n"
USER_CHECK = """    if not USER.fullmatch(user):
        raise ToolError("send an X-User header: 1 to 64 letters, digits, '.', '_' or '-'")
"""
SPAWN = "        spawn(generate(reply, prompt))\n"

# (what the learner got wrong, [(the reference's text, theirs)], the behaviour that must miss)
MISTAKES = [
    (
        "no progress notifications",
        [(PROGRESS, "")],
        "tools/call `ask` on worker A",
    ),
    (
        "generates the whole reply before following it",
        [(SPAWN, "        await generate(reply, prompt)\n")],
        "tools/call `ask` on worker A",
    ),
    (
        "a call with a known key starts a new reply (asks the model again)",
        [(JOIN, "    if False:\n")],
        "the same call again, same key",
    ),
    (
        "the key is not scoped to its user",
        [(KEY, 'f"ask:{key}"')],
        "another user's call with that same key",
    ),
    (
        "no X-User header is not refused",
        [(USER_CHECK, "")],
        "bad calls are error results",
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
    failed, out = first_miss(10, broken(tmp_path, "mcp_tool.py", *changes), capsys)
    assert missed in failed, out
