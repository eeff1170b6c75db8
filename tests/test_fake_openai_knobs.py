"""The fake model's knobs are bounded: one that would never finish, or 500, is a 400 that says why.

`x-fake-retry-after: inf` used to be a 500, `x-fake-ttft: inf` and `x-fake-tps: 1e-300` streams
that never finish, and `x-fake-tokens` unbounded (3,000,000 tokens built on the event loop
stalled every other request for 1.4 s).
"""

from __future__ import annotations

import pytest

from server.apps.fake_openai.model import Knobs


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("ttft", "inf"),
        ("ttft", "601"),
        ("tps", "1e-300"),
        ("tps", "nan"),
        ("tokens", "3000000"),
        ("retry_after", "inf"),
        ("fail_after", "1e9"),
        ("status", "200"),
    ],
)
def test_a_knob_out_of_its_range_is_refused_by_name(name: str, raw: str) -> None:
    header = Knobs.header(name)
    with pytest.raises(ValueError, match=f"Invalid {header}: expected .*, got '{raw}'"):
        Knobs().override({header: raw}, Knobs.header)


def test_knobs_in_range_are_taken() -> None:
    values = {"x-fake-ttft": "0", "x-fake-tps": "0", "x-fake-tokens": "100000"}
    assert Knobs().override(values, Knobs.header) == Knobs(ttft=0, tps=0, tokens=100_000)
    assert Knobs().override({"x-fake-tps": "0.5"}, Knobs.header).tps == 0.5
