"""Stage 5's check catches the mistakes a learner plausibly makes in a streaming Django view.

Each test copies the reference project, breaks one thing, and runs the real check: it must stop
at the behaviour that the mistake breaks, saying what it received.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course.stages import check_stage
from tests.stage_checks import broken, reference_and_stubs

pytestmark = pytest.mark.stage

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(5)


VIEWS = "django_site/views.py"


def test_a_sync_generator_is_read_whole_and_the_log_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed's habit: `def` and `time.sleep`. Under ASGI Django sends it all at the end."""
    folder = broken(
        tmp_path,
        VIEWS,
        ("import asyncio\n", "import asyncio\nimport time\n"),
        ("async def ticks(", "def ticks("),
        ("await asyncio.sleep(interval)", "time.sleep(interval)"),
    )
    assert not check_stage(5, folder)
    out = capsys.readouterr().out
    assert "✅ the events are 3, 2, 1, 발사! with ids 3, 2, 1, 0" in out, out
    assert "❌ they arrive spread over time" in out, out
    assert "StreamingHttpResponse must consume synchronous iterators" in out, out


def test_cleanup_under_except_exception_misses_the_cancellation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`CancelledError` is not an `Exception`: cleanup written under `except Exception` never
    runs when the client leaves."""
    folder = broken(
        tmp_path, VIEWS, ("    finally:  # runs when", "    except Exception:  # runs when")
    )
    assert not check_stage(5, folder)
    out = capsys.readouterr().out
    assert "❌ the generator's cleanup runs within 2 s of a client leaving" in out, out
    assert "0 new 'countdown closed' lines in 2 s" in out, out
