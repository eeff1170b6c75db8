"""Who is asking: a random user id in a cookie, signed with HMAC so nobody can pick another's.

No login: the capstone only needs a stable identity to hang history and limits on, never a
name, and never a prompt in a URL. The cookie is ``<user id>.<signature>``, where the
signature is HMAC-SHA256 of the id under ``SESSION_SECRET`` (stdlib `hmac`; itsdangerous does
the same with more options). It is ``HttpOnly`` (no script reads it), ``SameSite=Lax`` (a
cross-site POST does not carry it) and, behind HTTPS, should be ``Secure`` too.

A cookie whose signature does not match was changed or made elsewhere: the API refuses it with
a 403 that says so, before anything is read or stored; only the page (``GET /``) replaces it
with a fresh session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

COOKIE = "capstone_session"
USER_ID = re.compile(r"[0-9a-f]{32}")
MAX_AGE = 30 * 24 * 3600  # seconds the browser keeps the cookie


class SessionRefused(Exception):
    """No session, or one this server did not sign; `status` is 401 or 403."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.status = status


def sign(user: str, secret: str) -> str:
    mac = hmac.new(secret.encode(), user.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def new_cookie(secret: str) -> tuple[str, str]:
    """A fresh (user id, cookie value)."""
    user = secrets.token_hex(16)
    return user, f"{user}.{sign(user, secret)}"


def user_of(cookie: str | None, secret: str) -> str:
    """The user id in a session cookie; `SessionRefused` if there is none or it is forged."""
    if not cookie:
        raise SessionRefused(
            "No session cookie: open the chat page (GET /) or GET api/session first.", 401
        )
    user, _, signature = cookie.partition(".")
    expected = sign(user, secret)
    # Compared as bytes: a cookie may hold any byte, and compare_digest refuses non-ASCII str.
    if not (USER_ID.fullmatch(user) and hmac.compare_digest(signature.encode(), expected.encode())):
        raise SessionRefused(
            "The session cookie's signature does not match: it was changed, or made by "
            "another server. Nothing was stored. Reload the page to get a new session.",
            403,
        )
    return user


def cookie_header(value: str) -> str:
    """The ``Set-Cookie`` value for a session cookie (add ``; Secure`` behind HTTPS)."""
    return f"{COOKIE}={value}; Path=/; Max-Age={MAX_AGE}; HttpOnly; SameSite=Lax"
