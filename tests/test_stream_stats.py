"""`server.stream_stats`: how streams ended, and counters of one's own beside them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from server.stream_stats import StreamStats


def test_track_counts_how_each_stream_ended() -> None:
    stats = StreamStats()
    with stats.track("s"):
        assert stats.counts("s")["active"] == 1
    with pytest.raises(KeyError), stats.track("s"):
        raise KeyError
    with pytest.raises(asyncio.CancelledError), stats.track("s"):
        raise asyncio.CancelledError
    assert stats.counts("s") == {"active": 0, "finished": 1, "cancelled": 1, "failed": 1}

    def sync_stream() -> Iterator[int]:
        with stats.track("sync"):
            yield 1
            yield 2

    stream = sync_stream()
    next(stream)
    stream.close()  # the client left a sync generator: GeneratorExit
    assert stats.counts("sync") == {"active": 0, "finished": 0, "cancelled": 1, "failed": 0}


def test_added_counters_sit_beside_the_tracked_ones() -> None:
    stats = StreamStats()
    assert stats.counts("gen") == {"active": 0, "finished": 0, "cancelled": 0, "failed": 0}
    stats.add("gen", "requests")
    stats.add("gen", "tokens", 5)
    with stats.track("gen"):
        stats.add("gen", "tokens")
    assert stats.snapshot() == {
        "gen": {"active": 0, "finished": 1, "cancelled": 0, "failed": 0, "requests": 1,
                "tokens": 6}
    }  # fmt: skip
    with pytest.raises(ValueError, match="counted by track"):
        stats.add("gen", "finished")


def test_reset_keeps_only_what_still_runs() -> None:
    stats = StreamStats()
    stats.add("gen", "tokens", 3)
    with stats.track("gen"):
        stats.log_request("/x", {"last-event-id": "4"})
        stats.reset()
        assert stats.counts("gen") == {
            "active": 1, "finished": 0, "cancelled": 0, "failed": 0, "tokens": 0
        }  # fmt: skip
        assert stats.requests() == []
    assert stats.counts("gen")["finished"] == 1
