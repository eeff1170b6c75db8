"""Numbers from the environment, checked at start: a bad setting stops the app and says which.

Every app reads a few numbers from the environment (`HEARTBEAT=15`). A bare `float(...)` takes
`HEARTBEAT=0`, `-1`, `nan` or `inf`, and the app then writes `: ping` in a busy loop or never at
all, long after it started without a word. `number` refuses anything outside the variable's
range with a `ValueError` that names the variable, the range and what it got, which stops the
app at start, where the operator is looking:

    heartbeat = number(env, "HEARTBEAT", 15.0, low=0.05, high=3600)
    # ValueError: HEARTBEAT must be a number from 0.05 to 3600, got '0'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeVar

__all__ = ["number"]

N = TypeVar("N", int, float)


def number(
    env: Mapping[str, str | None], name: str, default: N, *, low: N, high: N | None = None
) -> N:
    """`env[name]` as the type of `default`, from `low` to `high`; `default` when unset or empty."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    kind = type(default)
    try:
        value: N | None = kind(raw)
    except ValueError:
        value = None
    top = math.inf if high is None else high
    if value is None or not (math.isfinite(value) and low <= value <= top):
        what = "a whole number" if kind is int else "a number"
        span = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
        raise ValueError(f"{name} must be {what} {span}, got {raw!r}")
    return value
