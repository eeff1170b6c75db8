"""Stage 3's check catches the mistakes a learner plausibly makes in their page, each at its own
behaviour.

Each test copies the reference project, breaks one thing in its static/ page and runs the stage's
check on it in Chromium: the check must fail, and at the behaviour that the mistake breaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course.stages import check_stage
from tests.stage_checks import broken, reference_and_stubs

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("chromium"), pytest.mark.stage]

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(3)

# (what the learner got wrong, the file, the reference's text, theirs, the behaviour that misses)
MISTAKES = [
    (
        "innerHTML for the event's text",
        "countdown.js",
        "item.textContent = event.data;",
        "item.innerHTML = event.data;",
        "a launch text of <img src=x onerror=...> appears as text",
    ),
    (
        "a path from the root for the stream",
        "countdown.js",
        'new EventSource("countdown" + location.search)',
        'new EventSource("/countdown" + location.search)',
        "through a hub's proxy",
    ),
    (
        "empties the list whenever the stream opens",
        "countdown.js",
        "source.onerror = () => {",
        "source.onopen = () => list.replaceChildren();\nsource.onerror = () => {",
        "your server crashes mid-countdown and restarts",
    ),
    (
        "a live list: every number announced",
        "index.html",
        '<ol id="countdown" aria-labelledby="countdown-label" aria-busy="true">',
        '<ol id="countdown" aria-live="polite">',
        "it is labelled",
    ),
    (
        "a status too pale to read (axe-core: color-contrast, serious)",
        "index.html",
        '<p id="status" role="status"></p>',
        '<p id="status" role="status" style="color: #bbb"></p>',
        "axe-core finds nothing serious",
    ),
]


@pytest.mark.parametrize(
    ("file", "right", "wrong", "missed"),
    [pytest.param(*rest, id=name) for name, *rest in MISTAKES],
)
def test_a_mistake_fails_at_its_behaviour(
    file: str,
    right: str,
    wrong: str,
    missed: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = broken(tmp_path, f"static/{file}", (right, wrong))

    passed = check_stage(3, folder)
    out = capsys.readouterr().out
    assert not passed, out
    assert f"❌ {missed}" in out, out
