"""Tests for server/event_ids.py: a Last-Event-ID is untrusted input."""

from __future__ import annotations

import pytest

from server.event_ids import parse_counter_id


@pytest.mark.parametrize(("value", "expected"), [(None, 0), ("", 0), ("0", 0), ("42", 42)])
def test_no_id_means_from_the_start_and_digits_mean_after_that_id(
    value: str | None, expected: int
) -> None:
    assert parse_counter_id(value) == expected


@pytest.mark.parametrize("value", ["-1", " 5", "+5", "1_0", "５", "1.0", "abc", "0x10"])
def test_anything_but_ascii_digits_is_refused_with_the_field_named(value: str) -> None:
    with pytest.raises(ValueError, match="since must be a non-negative decimal integer"):
        parse_counter_id(value, "since")


def test_a_huge_id_is_refused_not_turned_into_a_huge_int() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_counter_id("9" * 19)
    assert parse_counter_id("9" * 18) == 10**18 - 1


def test_the_message_does_not_echo_a_huge_header_back() -> None:
    with pytest.raises(ValueError) as error:
        parse_counter_id("x" * 10_000)
    assert len(str(error.value)) < 200
