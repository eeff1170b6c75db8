"""The small statistics and the text table the lessons print their measurements with."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import psutil
import pytest

from server.clients.measure import (
    cpu_seconds,
    format_table,
    percentile,
    rss_kib,
    share_soon_after,
)


@pytest.mark.parametrize("values", [[1, 2, 3, 4], [5], [0, 10], [3.5, -1, 7, 7, 2, 9.25, 0, 4]])
@pytest.mark.parametrize("q", [0, 25, 50, 95, 99, 100])
def test_percentile_interpolates_like_numpy(values, q):
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_nan():
    assert math.isnan(percentile([], 50))


def test_share_soon_after_counts_times_within_the_window_after_a_mark():
    # 1.05 follows the mark at 1.0; 0.95 is before it; 2.5 is too long after 2.0.
    assert share_soon_after([1.05, 0.95, 2.5, 2.01], marks=[2.0, 1.0], within=0.1) == 0.5
    assert math.isnan(share_soon_after([], [1.0], 0.1))


def test_format_table_aligns_names_left_and_numbers_right():
    rows = [
        {"method": "poll 1 s", "requests": 1450, "p50 ms": 496.3, "p95 ms": math.nan},
        {"method": "SSE", "requests": 30, "p50 ms": 4.84, "p95 ms": 16.2},
    ]
    assert format_table(rows).splitlines() == [
        "method    requests  p50 ms  p95 ms",
        "--------  --------  ------  ------",
        "poll 1 s     1,450     496     n/a",
        "SSE             30     4.8    16.2",
    ]
    assert format_table([]) == ""


def test_a_process_memory_and_cpu_time_are_read() -> None:
    # This process: at least the interpreter in memory, and the CPU it has spent so far.
    assert 5_000 < rss_kib(os.getpid()) < 10_000_000
    spent = time.process_time()
    assert 0 < cpu_seconds(os.getpid()) <= spent + 0.05  # the kernel counts in clock ticks
    with pytest.raises(psutil.NoSuchProcess):
        rss_kib(2**22 + 1)  # above Linux's largest pid: no such process
