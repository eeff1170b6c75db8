"""Only the hosts in `ALLOWED_HOSTS` are served: a request naming another Host is a 400.

Django checks `ALLOWED_HOSTS` only when something calls `request.get_host()`: `CommonMiddleware`,
the CSRF check, building an absolute URL. This project uses none of them, so the setting that
says it protects the loopback default protected nothing, and a page on another site could
reach it by DNS rebinding (its own name, resolved to 127.0.0.1). This middleware asks for the
host first; Django answers `DisallowedHost` with a 400. It is written for both kinds of
server, so under ASGI it runs on the event loop, with no hop to a thread per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

Handler = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]


@sync_and_async_middleware
def allowed_hosts_only(get_response: Handler) -> Handler:
    """Refuse (400) a request whose Host is not in `ALLOWED_HOSTS`, before any view runs."""
    if iscoroutinefunction(get_response):

        async def check_async(request: HttpRequest) -> HttpResponseBase:
            request.get_host()  # raises DisallowedHost, which Django answers with a 400
            response = get_response(request)
            assert not isinstance(response, HttpResponseBase)
            return await response

        return check_async

    def check(request: HttpRequest) -> HttpResponseBase:
        request.get_host()
        response = get_response(request)
        assert isinstance(response, HttpResponseBase)
        return response

    return check
