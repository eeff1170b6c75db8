"""An ASGI app whose startup never finishes: the launcher must time out, not hang."""

import asyncio


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await asyncio.Event().wait()  # never completes startup
