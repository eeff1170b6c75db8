"""Stage 5 (lesson 07): your countdown as a Django view, streamed by an ASGI server.

A Django project of its own beside the FastAPI app, with no database: `views.py` holds the
stream, `settings.py` and `urls.py` the least Django needs. The same project runs under either
kind of server, which lesson 07 measures:

    uvicorn mychat.django_site.asgi:application                   # ASGI: one event loop
    gunicorn --threads 4 mychat.django_site.wsgi:application      # WSGI: a thread per request
"""
