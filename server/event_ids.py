"""Event ids, and how a server reads the one a client sends back as `Last-Event-ID`.

SSE itself treats an id as opaque text: the browser stores it and returns it on reconnect.
What it means is the server's choice. The course uses counters (1, 2, 3, ...), where "the
events after id n" is simply n + 1 onwards, and (from lesson 09) Redis stream ids.

The value arrives in a request header, so it is untrusted input. A malformed one raises
`ValueError` with the reason, which the endpoint turns into a 400: a client must never be
silently restarted from the beginning (it would see duplicates) or skipped ahead (it would
lose events). Validate before the response starts, while a status code can still be sent.
"""

from __future__ import annotations

MAX_DIGITS = 18  # below 2**63: fits every database's and language's integer


def parse_counter_id(value: str | None, name: str = "Last-Event-ID") -> int:
    """The counter a client last saw: 0 for none (`None`, or the standard's empty id).

    Only plain ASCII digits are accepted (`int()` alone would also take " 5", "+5", "1_0"
    and "５"); `name` is the header or parameter the value came from, for the message.
    """
    if value is None or value == "":
        return 0
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"{name} must be a non-negative decimal integer, got {value[:40]!r}")
    if len(value) > MAX_DIGITS:
        raise ValueError(f"{name} is too large (over {MAX_DIGITS} digits): {value[:20]!r}...")
    return int(value)
