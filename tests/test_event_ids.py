"""Tests for server/event_ids.py: a Last-Event-ID is untrusted input."""

from __future__ import annotations

import pytest

from server.event_ids import StreamId, parse_counter_id, parse_stream_id


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


# --- Redis stream ids (lesson 09) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0-0", StreamId(0, 0)),
        ("1700000000000-12", StreamId(1700000000000, 12)),
    ],
)
def test_a_stream_id_is_parsed_into_a_pair_and_none_means_no_id(
    value: str | None, expected: StreamId | None
) -> None:
    assert parse_stream_id(value) == expected


def test_stream_ids_compare_in_stream_order_and_print_as_redis_writes_them() -> None:
    ids = [parse_stream_id(v) for v in ("10-0", "9-5", "9-10")]
    assert sorted(i for i in ids if i is not None) == [(9, 5), (9, 10), (10, 0)]
    assert str(StreamId(9, 10)) == "9-10"


@pytest.mark.parametrize(
    "value",
    # Redis's own shortcuts are no event id a client could have received: each is refused,
    # never taken to mean "from the start" or "from now".
    ["5", "-", "+", "$", "0", "5-", "-5", "5-x", "5--1", " 5-0", "5-0 ", "５-0", "5-0-0", "1e3-0"],
)
def test_anything_but_digits_dash_digits_is_refused_with_the_field_named(value: str) -> None:
    with pytest.raises(ValueError, match="Last-Event-ID must be a Redis stream id"):
        parse_stream_id(value)


def test_each_half_must_fit_in_64_bits() -> None:
    top = 2**64 - 1
    assert parse_stream_id(f"{top}-{top}") == StreamId(top, top)
    with pytest.raises(ValueError, match="out of range"):
        parse_stream_id(f"{top + 1}-0")
    with pytest.raises(ValueError, match="must be a Redis stream id"):
        parse_stream_id("1" * 21 + "-0")


def test_a_bad_stream_id_message_does_not_echo_a_huge_header_back() -> None:
    with pytest.raises(ValueError) as error:
        parse_stream_id("x" * 10_000)
    assert len(str(error.value)) < 200
