"""`server.query_params.whole_number`: a count, or a refusal that says why."""

from __future__ import annotations

import pytest

from server.query_params import whole_number


def test_a_count_is_read_and_an_absent_one_is_none() -> None:
    assert whole_number({"limit": "5"}, "limit") == 5
    assert whole_number({"limit": "000000007"}, "limit") == 7
    assert whole_number({}, "limit") is None


@pytest.mark.parametrize("raw", ["", " 5", "-1", "1_000", "٥", "5.0", "1234567890", "x" * 50])
def test_anything_but_up_to_nine_ascii_digits_is_refused_with_the_reason(raw: str) -> None:
    with pytest.raises(ValueError, match="history must be a whole number, got") as refused:
        whole_number({"history": raw}, "history")
    assert len(str(refused.value)) < 80  # the value is cut: an error never echoes a huge input
