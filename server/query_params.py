"""A count from a query string (`?limit=5`), or a ValueError that says what was wrong.

Every endless endpoint of the course takes `?limit=N` (and the broadcast rooms `?history=K`).
A count is refused unless it is plain ASCII digits, at most nine of them: `int()` alone would
take " 5", "٥" (an Arabic-Indic five), "1_000" and a million digits.
"""

from __future__ import annotations

from collections.abc import Mapping


def whole_number(params: Mapping[str, str], name: str) -> int | None:
    """`params[name]` as a whole number, None if absent; ValueError with the reason if not one."""
    raw = params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise ValueError(f"{name} must be a whole number, got {raw[:20]!r}")
    return int(raw)
