"""Checking a learner's exercise without ever breaking their notebook.

An exercise in this course is a function the learner writes. In the learner's copy its body is
a stub that raises `NotImplementedError`. A check cell calls

    build_request = check(build_request, test_build_request, reference=http.build_request)

which runs the test against the learner's function and prints one line: passed, failed (with
what went wrong), or not attempted. It never raises. It returns the function later cells
should use: the learner's when it passed, otherwise the reference implementation from
`server/`, so an unsolved exercise never breaks the rest of the lesson.

Every check has a deadline. A learner's loop that never ends (a reconnecting reader that
ignores a 204, say) must not hang the kernel: after `deadline` seconds the check prints
"did not finish" with the exercise's `hint` and hands back the reference. A sync test runs in
a daemon thread for that, so a learner's runaway loop is abandoned there rather than killed;
an async one is cancelled at its next `await`.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

DEADLINE = 30.0
"""Seconds a check may take. Every exercise's test finishes in a few seconds when solved."""


class Outcome(Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_ATTEMPTED = "not attempted"


class DidNotFinish(Exception):
    """The test was still running at its deadline: the learner's code loops or waits forever."""


def run_check(
    func: F, test: Callable[[F], object], *, deadline: float = DEADLINE, hint: str = ""
) -> Outcome:
    """Run `test(func)` and print the outcome; `test` asserts what must hold."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            test(func)
        except BaseException as error:  # a learner's bug must not stop the notebook
            errors.append(error)

    worker = threading.Thread(target=run, name=f"check {_name(func)}", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        return _report(func, DidNotFinish(_late(deadline, hint)))
    return _report(func, errors[0] if errors else None)


async def run_check_async(
    func: F,
    test: Callable[[F], Awaitable[object]],
    *,
    deadline: float = DEADLINE,
    hint: str = "",
) -> Outcome:
    """`run_check` for a test that must be awaited (the exercise is async code)."""
    try:
        await asyncio.wait_for(test(func), deadline)
    except TimeoutError:
        return _report(func, DidNotFinish(_late(deadline, hint)))
    except Exception as error:
        return _report(func, error)
    return _report(func, None)


def check(
    func: F,
    test: Callable[[F], object],
    *,
    reference: F,
    deadline: float = DEADLINE,
    hint: str = "",
) -> F:
    """Check `func` with `test`; return it if it passed, else `reference` (and say so).

    `hint` is what to look at when the check runs past `deadline` seconds."""
    return _choose(run_check(func, test, deadline=deadline, hint=hint), func, reference)


async def check_async(
    func: F,
    test: Callable[[F], Awaitable[object]],
    *,
    reference: F,
    deadline: float = DEADLINE,
    hint: str = "",
) -> F:
    """`check` for an async test. A notebook cell already runs in an event loop, so
    `asyncio.run` is not allowed there; await this instead: `fn = await check_async(...)`."""
    outcome = await run_check_async(func, test, deadline=deadline, hint=hint)
    return _choose(outcome, func, reference)


def _late(deadline: float, hint: str) -> str:
    return f"did not finish in {deadline:g} s" + (f": {hint}" if hint else "")


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", "exercise")


def _report(func: Callable[..., Any], error: BaseException | None) -> Outcome:
    name = _name(func)
    if error is None:
        print(f"✅ {name}: passed.")
        return Outcome.PASSED
    if isinstance(error, DidNotFinish):
        print(f"❌ {name}: {error}")
        return Outcome.FAILED
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
