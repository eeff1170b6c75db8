"""A WSGI app for gunicorn: the generic launcher path that lesson 07's Django will take."""


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from WSGI"]
