"""The checks of lesson 03's exercises pass the reference and fail each wrong answer, naming the
rule it broke (the message is all a learner sees of the check)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from server.course import wire_format_checks as checks
from server.course.exercise import Outcome, run_check
from server.sse import Event


def test_encode_event_check_passes_the_reference() -> None:
    checks.test_encode_event(checks.reference_encode_event)


def test_encode_event_check_passes_another_spelling() -> None:
    def crlf(data: str, event: str | None = None, id: str | None = None) -> bytes:
        return checks.reference_encode_event(data, event, id).replace(b"\n", b"\r\n")

    checks.test_encode_event(crlf)


def naive(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """The seed notes' f-string: a line break in the data ends the data line."""
    head = "".join(f"{name}: {value}\n" for name, value in (("event", event), ("id", id)) if value)
    return f"{head}data: {data}\n\n".encode()


def no_blank_line(data: str, event: str | None = None, id: str | None = None) -> bytes:
    return checks.reference_encode_event(data, event, id)[:-1]


def no_space(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """`data:` and the line with no space between: a decoder strips the data's own space."""
    return checks.reference_encode_event(data, event, id).replace(b"data: ", b"data:")


def lf_only(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """Splits data on LF alone, so a CR inside a line starts a field of its own."""
    lines = [f"data: {line}" for line in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def unchecked_id(data: str, event: str | None = None, id: str | None = None) -> bytes:
    head = "".join(f"{name}: {value}\n" for name, value in (("event", event), ("id", id)) if value)
    return head.encode() + checks.reference_encode_event(data)


@pytest.mark.parametrize(
    ("wrong", "rule"),
    [
        (naive, "one data line per line"),
        (no_blank_line, "exactly one event"),
        (lf_only, "LF, CRLF and CR all end a line"),
        (no_space, "strips one space after `data:`"),
        (unchecked_id, "should raise ValueError"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_encode_event_check_names_the_broken_rule(wrong: checks.Encoder, rule: str) -> None:
    with pytest.raises(AssertionError, match=rule):
        checks.test_encode_event(wrong)


def test_parse_block_check_passes_the_reference() -> None:
    checks.test_parse_block(checks.reference_parse_block)


def strips_every_space(lines: list[str]) -> Event | None:
    """Strips every space after the colon, where the standard strips one."""
    return checks.reference_parse_block([re.sub(r":\s+", ":", line, count=1) for line in lines])


def unicode_digits(lines: list[str]) -> Event | None:
    """Takes `retry: ５` (a full-width digit: str.isdigit() says yes) as 5."""
    event = checks.reference_parse_block(lines)
    retries = [line[7:] for line in lines if line.startswith("retry: ") and line[7:].isdigit()]
    if event is None or not retries:
        return event
    return Event(event.data, event.event, event.id, int(retries[-1]))


def dispatches_without_data(lines: list[str]) -> Event | None:
    """httpx-sse's way: a block with no data line still makes an event."""
    return checks.reference_parse_block(lines) or Event("", "message", "")


@pytest.mark.parametrize(
    ("wrong", "case"),
    [
        (strips_every_space, "two spaces"),
        (unicode_digits, "retry: ５"),
        (dispatches_without_data, "event: update"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_parse_block_check_names_the_block_it_got_wrong(
    wrong: Callable[[list[str]], Event | None], case: str
) -> None:
    with pytest.raises(AssertionError, match=case):
        checks.test_parse_block(wrong)


def test_a_stub_is_not_attempted_and_a_wrong_answer_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def encode_event(data: str, event: str | None = None, id: str | None = None) -> bytes:
        raise NotImplementedError

    assert run_check(encode_event, checks.test_encode_event) is Outcome.NOT_ATTEMPTED
    assert run_check(naive, checks.test_encode_event) is Outcome.FAILED
    assert "one data line per line" in capsys.readouterr().out
