"""Small statistics, a text table, and what a server process costs, for what the lessons measure.

Lessons report delivery delays as percentiles (the median says what is usual, p95 what one
user in twenty suffers) and print their results as plain aligned tables, so nothing here needs
numpy or pandas: a learner can read each function in a few lines, and `percentile` agrees with
numpy's default (linear interpolation), which the tests check. Lesson 02's experiment, later
lessons' load tests and the scripts in bench/ share these rather than each writing their own.

`rss_kib` and `cpu_seconds` read another process's memory and CPU time through psutil (the
kernel's own count, as /proc has it on Linux, and the same on macOS), as a bench or a lesson
measures the server it started: the server's own count, not the client's guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import psutil


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile by linear interpolation (numpy's default); nan for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def share_soon_after(times: Iterable[float], marks: Iterable[float], within: float) -> float:
    """The share of `times` that fall at most `within` seconds after one of `marks`.

    Lesson 02 uses it to show long polling's burst: nearly every re-request follows an event.
    """
    times, marks = list(times), sorted(marks)
    if not times:
        return math.nan
    hits = sum(any(0 <= t - m <= within for m in marks) for t in times)
    return hits / len(times)


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows of dicts with the same keys, as an aligned text table (no pandas needed).

    The first column is left-aligned (it names the row), numbers right-aligned; floats get one
    decimal below 100 and none above, with thousands separators; nan shows as "n/a".
    """
    if not rows:
        return ""
    columns = list(rows[0])
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [
        "  ".join(
            text.ljust(width) if i == 0 else text.rjust(width)
            for i, (text, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in [columns, *cells]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid` now, in KiB."""
    return int(psutil.Process(pid).memory_info().rss) // 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process `pid` has used so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)
