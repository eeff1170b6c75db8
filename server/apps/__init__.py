"""The runnable servers, one module per app, named for what they serve.

Start one from a notebook or a test with the launcher, by import string:
`start_app("server.apps.fastapi_streams:app")`; or from a shell with
`uvicorn server.apps.fastapi_streams:app`. Apps build on the protocol core (`server.sse`)
and never import the course machinery (`server.course`).
"""
