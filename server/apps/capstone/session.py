"""Who is asking: a random user id in a cookie, signed with HMAC so nobody can pick another's.

No login: the capstone only needs a stable identity to hang history and limits on, never a
name, and never a prompt in a URL. The cookie is ``<user id>.<issued>.<signature>``, where
``issued`` is when it was made (Unix seconds) and the signature is HMAC-SHA256 of both under
``SESSION_SECRET`` (stdlib `hmac`; itsdangerous does the same with more options). It is
``HttpOnly`` (no script reads it), ``SameSite=Lax`` (a cross-site POST does not carry it) and,
behind HTTPS, should be ``Secure`` too.

A cookie whose signature does not match was changed or made elsewhere (`ForgedSession`); one
older than ``SESSION_MAX_AGE`` has expired (`ExpiredSession`), whatever the browser was told:
the server decides, so a copied cookie stops working too. The API refuses both before
anything is read or stored; only the page (``GET /``) replaces them with a fresh session.
Revoking every session at once is rotating ``SESSION_SECRET``. One user's alone is not
offered: with no login there is no account to revoke, and a client that misbehaves is held
by the per-user and per-address limits (`server.course.capstone_stack` says where each lives); a
revocation list would put a Redis read in front of every request, refusals included.

This module says what is wrong; the API says which status that is (`api`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

COOKIE = "capstone_session"
USER_ID = re.compile(r"[0-9a-f]{32}")
ISSUED = re.compile(r"[0-9]{1,12}")


class SessionRefused(Exception):
    """The request has no session this server accepts; the message says what to do."""


class NoSession(SessionRefused):
    """No session cookie at all."""


class ForgedSession(SessionRefused):
    """A cookie this server did not sign (changed, or made elsewhere)."""


class ExpiredSession(SessionRefused):
    """A cookie this server signed, more than ``SESSION_MAX_AGE`` seconds ago."""


def sign(payload: str, secret: str) -> str:
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def new_cookie(secret: str, now: float | None = None) -> tuple[str, str]:
    """A fresh (user id, cookie value), issued `now` (default: the clock)."""
    user = secrets.token_hex(16)
    payload = f"{user}.{int(time.time() if now is None else now)}"
    return user, f"{payload}.{sign(payload, secret)}"


def user_of(cookie: str | None, secret: str, max_age: int, now: float | None = None) -> str:
    """The user id in a session cookie, or `NoSession`, `ForgedSession`, `ExpiredSession`."""
    if not cookie:
        raise NoSession("No session cookie: open the chat page (GET /) or GET api/session first.")
    payload, _, signature = cookie.rpartition(".")
    user, _, issued = payload.partition(".")
    expected = sign(payload, secret)
    # Compared as bytes: a cookie may hold any byte, and compare_digest refuses non-ASCII str.
    if not (
        USER_ID.fullmatch(user)
        and ISSUED.fullmatch(issued)
        and hmac.compare_digest(signature.encode(), expected.encode())
    ):
        raise ForgedSession(
            "The session cookie's signature does not match: it was changed, or made by "
            "another server. Nothing was stored. Reload the page to get a new session."
        )
    age = (time.time() if now is None else now) - int(issued)
    if age > max_age:
        raise ExpiredSession(
            f"The session expired ({int(age)} s old, at most {max_age}, SESSION_MAX_AGE). "
            "Nothing was stored. Reload the page to get a new session."
        )
    return user


def cookie_header(value: str, max_age: int) -> str:
    """The ``Set-Cookie`` value for a session cookie (add ``; Secure`` behind HTTPS); the
    browser keeps it as long as the server accepts it."""
    return f"{COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
