"""Checking a learner's exercise without ever breaking their notebook.

An exercise in this course is a function the learner writes. In the learner's copy its body is
a stub that raises `NotImplementedError`. A check cell calls

    build_request = check(build_request, test_build_request, reference=http.build_request)

which runs the test against the learner's function and prints one line: passed, failed (with
what went wrong), or not attempted. It never raises. It returns the function later cells
should use: the learner's when it passed, otherwise the reference implementation from
`server/`, so an unsolved exercise never breaks the rest of the lesson.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Outcome(Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_ATTEMPTED = "not attempted"


def run_check(func: F, test: Callable[[F], object]) -> Outcome:
    """Run `test(func)` and print the outcome; `test` asserts what must hold."""
    try:
        test(func)
    except Exception as error:  # a learner's bug must not stop the notebook
        return _report(func, error)
    return _report(func, None)


async def run_check_async(func: F, test: Callable[[F], Awaitable[object]]) -> Outcome:
    """`run_check` for a test that must be awaited (the exercise is async code)."""
    try:
        await test(func)
    except Exception as error:
        return _report(func, error)
    return _report(func, None)


def check(func: F, test: Callable[[F], object], *, reference: F) -> F:
    """Check `func` with `test`; return it if it passed, else `reference` (and say so)."""
    return _choose(run_check(func, test), func, reference)


async def check_async(func: F, test: Callable[[F], Awaitable[object]], *, reference: F) -> F:
    """`check` for an async test. A notebook cell already runs in an event loop, so
    `asyncio.run` is not allowed there; await this instead: `fn = await check_async(...)`."""
    return _choose(await run_check_async(func, test), func, reference)


def _report(func: Callable[..., Any], error: Exception | None) -> Outcome:
    name = getattr(func, "__name__", "exercise")
    if error is None:
        print(f"✅ {name}: passed.")
        return Outcome.PASSED
    if isinstance(error, NotImplementedError):
        print(f"⏳ {name}: not attempted yet. Replace the `raise NotImplementedError` and rerun.")
        return Outcome.NOT_ATTEMPTED
    if isinstance(error, AssertionError):
        print(f"❌ {name}: failed. {error or 'an assertion did not hold'}")
        return Outcome.FAILED
    where = traceback.extract_tb(error.__traceback__)[-1]
    print(
        f"❌ {name}: raised {type(error).__name__}: {error} (line {where.lineno} of {where.name})"
    )
    return Outcome.FAILED


def _choose(outcome: Outcome, func: F, reference: F) -> F:
    if outcome is Outcome.PASSED:
        return func
    print(f"   The rest of this notebook uses the reference `{_qualified(reference)}`.")
    return reference


def _qualified(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", "")
    return f"{module}.{func.__qualname__}" if module else func.__qualname__
