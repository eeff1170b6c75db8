"""Lesson 07's Django project: lesson 04's event streams, under WSGI and under ASGI.

The same project runs under either kind of server, which is the point of the lesson:

    # ASGI: one event loop holds every open stream
    start_app("server.apps.django_streams.asgi:application")
    # WSGI: one thread per open stream (gunicorn --workers 1 --threads 4)
    gunicorn server.apps.django_streams.wsgi:application

No database, no sessions, no templates: only what a streaming view needs (`settings.py`).
The views (`views.py`) encode every event with the course's SSE core, `server.sse`: one
copy of the wire format, whichever framework carries the bytes.
"""
