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
