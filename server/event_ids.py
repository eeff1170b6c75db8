"""Event ids, and how a server reads the one a client sends back as `Last-Event-ID`.

SSE itself treats an id as opaque text: the browser stores it and returns it on reconnect.
What it means is the server's choice. The course uses counters (1, 2, 3, ...), where "the
events after id n" is simply n + 1 onwards, and (from lesson 09) Redis stream ids
(`1700000000000-0`), where "the events after" is an exclusive `XRANGE key (id +`.

The value arrives in a request header, so it is untrusted input. A malformed one raises
`ValueError` with the reason, which the endpoint turns into a 400: a client must never be
silently restarted from the beginning (it would see duplicates) or skipped ahead (it would
lose events). Validate before the response starts, while a status code can still be sent.
"""

from __future__ import annotations

from typing import NamedTuple

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


MAX_STREAM_ID_PART = 2**64 - 1  # Redis keeps each half of a stream id as an unsigned 64-bit int


class StreamId(NamedTuple):
    """A Redis stream id, `<milliseconds>-<sequence>`: XADD makes one per entry, always rising.

    A pair of ints compares in stream order (`StreamId(5, 0) < StreamId(5, 1) < StreamId(6, 0)`),
    which text does not ("10-0" < "9-0"); `str()` gives back the form Redis and the client use.
    """

    milliseconds: int
    sequence: int

    def __str__(self) -> str:
        return f"{self.milliseconds}-{self.sequence}"


def parse_stream_id(value: str | None, name: str = "Last-Event-ID") -> StreamId | None:
    """The Redis stream id a client last saw: None for none (`None`, or the empty id).

    Only the full form `<digits>-<digits>` is accepted, each half at most 2**64 - 1. Redis
    itself takes shortcuts in commands (`"5"` for `5-0`, `"-"` and `"+"` for the ends, `"$"`
    for the newest), but a client never received one of those as an event id, so each is
    refused here rather than quietly meaning "from the start" or "from now".
    """
    if value is None or value == "":
        return None
    milliseconds, dash, sequence = value.partition("-")
    halves = (milliseconds, sequence)
    if not dash or not all(h.isascii() and h.isdigit() and len(h) <= 20 for h in halves):
        raise ValueError(
            f"{name} must be a Redis stream id such as 1700000000000-0, got {value[:40]!r}"
        )
    parsed = StreamId(int(milliseconds), int(sequence))
    if max(parsed) > MAX_STREAM_ID_PART:
        raise ValueError(f"{name} is out of range (each half at most 2**64 - 1): {value[:45]!r}")
    return parsed
