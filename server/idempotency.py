"""The `Idempotency-Key` rule, once: a POST sent again with the same key is done once.

A client whose request went through but whose answer was lost (a worker killed mid-request,
a 502 from the proxy) cannot tell whether it was done. Sending it again blindly may do it
twice; not sending it may lose it. With an `Idempotency-Key` header (the IETF's
draft-ietf-httpapi-idempotency-key-header), the client sends the same key with every retry,
and the server does the work for the first one only: a retry gets the first one's result.

What the server remembers is the app's (a Redis key per idempotency key, set in the same
atomic step as the work: `server.fanout.streams`, the capstone's admission script). What a
key may be, and for how long it is remembered, is this module's, the same for every app:

    key = idempotency_key(request.headers)  # None without one; BadIdempotencyKey if malformed
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["HEADER", "KEY", "REMEMBERED", "BadIdempotencyKey", "idempotency_key"]

HEADER = "Idempotency-Key"
KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")
"""A key: short, and only characters that are safe inside a Redis key name and a log line."""
REMEMBERED = 3600
"""Seconds a key is remembered: a retry later than that is a new request."""


class BadIdempotencyKey(ValueError):
    """The header is there but is not a key this server takes (a 400: the client's mistake)."""


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The request's idempotency key; None without the header (each POST is new)."""
    key = headers.get(HEADER.lower())
    if key is not None and not KEY.fullmatch(key):
        raise BadIdempotencyKey(
            f"{HEADER} must be 1 to 64 letters, digits or ._:- (a UUID will do), got {key[:80]!r}"
        )
    return key
