"""The exercise checker never raises, and always hands back a function that works."""

from __future__ import annotations

import asyncio

import pytest

from server.course.exercise import Outcome, check, check_async, run_check


def reference(x: int) -> int:
    return x + 1


def test_correct_solution_passes_and_is_used(capsys: pytest.CaptureFixture[str]) -> None:
    def solved(x: int) -> int:
        return x + 1

    def test(fn):
        assert fn(1) == 2

    assert check(solved, test, reference=reference) is solved
    assert capsys.readouterr().out == "✅ solved: passed.\n"


def test_stub_is_not_attempted_and_the_reference_is_used(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def stub(x: int) -> int:
        raise NotImplementedError

    assert check(stub, lambda fn: fn(1), reference=reference) is reference
    out = capsys.readouterr().out
    assert out.startswith("⏳ stub: not attempted yet.")
    assert "uses the reference `test_exercise.reference`" in out


def test_wrong_answer_fails_with_the_test_message(capsys: pytest.CaptureFixture[str]) -> None:
    def wrong(x: int) -> int:
        return x

    def test(fn):
        assert fn(1) == 2, f"wrong(1) returned {fn(1)}, expected 2"

    assert run_check(wrong, test) is Outcome.FAILED
    assert "❌ wrong: failed. wrong(1) returned 1, expected 2" in capsys.readouterr().out


def test_a_crash_in_the_learners_code_is_reported_not_raised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def crashes(x: int) -> int:
        return x // 0

    assert check(crashes, lambda fn: fn(1), reference=reference) is reference
    assert "raised ZeroDivisionError" in capsys.readouterr().out


def test_async_check_reports_the_same_outcomes(capsys: pytest.CaptureFixture[str]) -> None:
    async def stub(x: int) -> int:
        raise NotImplementedError

    async def solved(x: int) -> int:
        return x + 1

    async def test(fn):
        assert await fn(1) == 2

    async def areference(x: int) -> int:
        return x + 1

    assert asyncio.run(check_async(stub, test, reference=areference)) is areference
    assert "⏳ stub: not attempted yet." in capsys.readouterr().out
    assert asyncio.run(check_async(solved, test, reference=areference)) is solved
    assert capsys.readouterr().out == "✅ solved: passed.\n"


def test_a_sync_exercise_that_never_returns_fails_at_its_deadline_with_the_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import threading

    release = threading.Event()

    def loops_forever(x: int) -> int:
        release.wait()  # a learner's loop that never ends, released after the test
        return x

    try:
        result = check(
            loops_forever,
            lambda fn: fn(1),
            reference=reference,
            deadline=0.2,
            hint="does it stop on 204?",
        )
    finally:
        release.set()
    assert result is reference
    out = capsys.readouterr().out
    assert "❌ loops_forever: did not finish in 0.2 s: does it stop on 204?" in out


def test_an_async_exercise_that_never_returns_is_cancelled_at_its_deadline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def waits_forever(x: int) -> int:
        await asyncio.Event().wait()
        return x

    async def test(fn):
        await fn(1)

    async def areference(x: int) -> int:
        return x + 1

    result = asyncio.run(check_async(waits_forever, test, reference=areference, deadline=0.2))
    assert result is areference
    assert "❌ waits_forever: did not finish in 0.2 s\n" in capsys.readouterr().out
