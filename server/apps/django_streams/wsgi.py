"""The WSGI entry point: `gunicorn server.apps.django_streams.wsgi:application`.

One path is refused here: django-eventstream's `/library/events` streams with an async
iterator that never ends, and under WSGI a thread consumes it forever (four GETs took every
thread gunicorn had, and the server answered nothing more). Under WSGI it is a 501 saying to
serve the project with ASGI (`asgi.py`), where it belongs.
"""

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.apps.django_streams.settings")
django_application = get_wsgi_application()

ASGI_ONLY = ("/library/events",)
REFUSAL = (
    b"This stream (django-eventstream) needs ASGI: under WSGI a thread would consume it "
    b"forever. Serve the project with uvicorn server.apps.django_streams.asgi:application.\n"
)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Django's WSGI application, except for the paths only ASGI can serve."""
    if environ.get("PATH_INFO", "").startswith(ASGI_ONLY):
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(REFUSAL))),
        ]
        start_response("501 Not Implemented", headers)
        return [REFUSAL]
    return django_application(environ, start_response)
