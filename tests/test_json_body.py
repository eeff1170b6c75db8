"""The strict JSON body reader: each refusal with its status and reason; good bodies parse."""

from __future__ import annotations

import pytest

from server.asgi.json_body import MAX_DEPTH, BadBody, nesting, parse_json


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("{}", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('"[[[[not nesting]]]]"', 0),
        ('["a \\" [[[", [1]]', 2),  # an escaped quote does not end the string
        ('{"\\\\": [[]]}', 3),  # an escaped backslash does not escape the quote after it
    ],
)
def test_nesting_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert nesting(text) == depth


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"nested {MAX_DEPTH + 1} deep"),
        (b'{"text": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),  # in a key too
        (b'{"text": "caf\xe9"}', "not valid UTF-8 (byte 0xe9 at position 13)"),
        (b'{"text": }', "not valid JSON"),
    ],
)
def test_each_bad_body_is_a_400_that_says_why(body: bytes, reason: str) -> None:
    with pytest.raises(BadBody, match=reason.replace("(", r"\(").replace(")", r"\)")) as error:
        parse_json(body)
    assert error.value.status == 400


def test_good_bodies_parse_as_json_does() -> None:
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_json(deep.encode()) is not None
    assert parse_json('{"text": "안녕 \\ud83d\\ude00"}') == {"text": "안녕 😀"}  # a real pair
