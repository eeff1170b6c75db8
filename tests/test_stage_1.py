"""Stage 1's check: the reference passes, the stubs fail with a hint, and a blocking countdown
(time.sleep in the async generator) is caught where it hurts: 20 countdowns at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course.stages import check_stage
from tests.stage_checks import broken, reference_and_stubs

pytestmark = pytest.mark.stage

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(1)


@pytest.mark.parametrize(
    ("right", "wrong", "missed"),
    [
        pytest.param(
            "await asyncio.sleep(interval)",
            "__import__('time').sleep(interval)",
            "20 countdowns at once all finish",
            id="time.sleep",
        ),
        pytest.param(
            "    finally:  # runs when the countdown ends and when the client leaves early\n"
            '        print("countdown closed", flush=True)\n',
            '    except Exception:\n        print("countdown closed", flush=True)\n',
            "the generator's cleanup runs within 2 s of a client leaving",
            id="no finally",
        ),
    ],
)
def test_a_mistake_fails_at_its_behaviour(
    right: str, wrong: str, missed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not check_stage(1, broken(tmp_path, "countdown.py", (right, wrong)))
    out = capsys.readouterr().out
    assert f"❌ {missed}" in out, out
