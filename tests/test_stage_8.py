"""Stage 8's check catches the mistakes a learner plausibly makes, each at its own behaviour.

Each test copies the reference project, breaks one thing in room_ws.py (or in room.py, which
the socket shares) and runs the stage's check on it: the check must fail, and at the behaviour
that the mistake breaks. (Run against the unbroken reference, each of these tests fails: the
check passes.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course.stages import check_stage
from tests.stage_checks import broken, reference_and_stubs

pytestmark = [pytest.mark.redis, pytest.mark.stage]

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(8)

# (what the learner got wrong, the file, [(the reference's text, theirs)], the behaviour missed)
MISTAKES = [
    (
        "the frames carry the message without its id",
        "room_ws.py",
        [('frame = {"id": entry_id, **json.loads(data)}', "frame = json.loads(data)")],
        "WS /room/ws: a message sent up the socket",
    ),
    (
        "the socket starts at the newest message, whatever its ?last_id=",
        "room_ws.py",
        [("start = await start_after(last_id)", "start = await start_after(None)")],
        "a socket that reconnects with ?last_id=",
    ),
    (
        "\\d in the id's pattern, which takes other scripts' digits",
        "room.py",
        [('r"[0-9]{1,19}-[0-9]{1,19}"', r'r"\d{1,19}-\d{1,19}"')],
        "a malformed ?last_id=",
    ),
    (
        "receive_text(), which fails on a binary frame instead of closing with a reason",
        "room_ws.py",
        [
            (
                """        frame = await websocket.receive()
        if frame["type"] == "websocket.disconnect":
            return
        text = frame.get("text")
        if text is None:
            await websocket.close(POLICY, "send each message as a text frame of JSON")
            return
""",
                "        text = await websocket.receive_text()\n",
            )
        ],
        "a bad frame",
    ),
]


@pytest.mark.parametrize(
    ("file", "edits", "missed"), [pytest.param(*rest, id=name) for name, *rest in MISTAKES]
)
def test_a_mistake_fails_at_its_behaviour(
    file: str,
    edits: list[tuple[str, str]],
    missed: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = broken(tmp_path, file, *edits)

    passed = check_stage(8, folder)
    out = capsys.readouterr().out
    assert not passed, out
    assert f"❌ {missed}" in out, out
