"""Stage 2's check catches the mistakes a learner plausibly makes, each at its own behaviour.

Each test copies the reference project, breaks one thing in its countdown.py and runs the
stage's check on it: the check must fail, and at the behaviour that the mistake breaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course.stages import check_stage
from tests.stage_checks import broken, reference_and_stubs

pytestmark = pytest.mark.stage

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(2)


# (what the learner got wrong, the reference's line, their line, the behaviour that must miss)
MISTAKES = [
    (
        "no ids on the numbers",
        "yield encode(Event(data=str(n), id=str(n)))",
        "yield encode(Event(data=str(n)))",
        "every event carries `id:`",
    ),
    (
        "resumes with the event the client already has",
        "return seen - 1",
        "return seen",
        "a client that leaves after 5, 4 and reconnects",
    ),
    (
        "streams the launch again instead of 204",
        "if first < 0:",
        "if first < -1:",
        "Last-Event-ID: 1 gets the launch alone, and Last-Event-ID: 0",
    ),
    (
        "trusts isdigit(), which takes '²' that int() refuses",
        "(last_event_id.isascii() and last_event_id.isdecimal())",
        "last_event_id.isdigit()",
        "a malformed Last-Event-ID",
    ),
    (
        "an f-string for the launch event",
        'yield encode(Event(data=launch, id="0"))',
        'yield f"id: 0\\ndata: {launch}\\n\\n".encode()',
        "a launch text with a line break",
    ),
]


@pytest.mark.parametrize(
    ("right", "wrong", "missed"),
    [pytest.param(*rest, id=name) for name, *rest in MISTAKES],
)
def test_a_mistake_fails_at_its_behaviour(
    right: str, wrong: str, missed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = broken(tmp_path, "countdown.py", (right, wrong))

    passed = check_stage(2, folder)
    out = capsys.readouterr().out
    assert not passed, out
    assert f"❌ {missed}" in out, out
