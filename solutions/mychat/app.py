"""The app uvicorn runs (`uvicorn mychat.app:app`): each module adds routes; the page is static."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from mychat import chat, countdown, mcp_tool, replies, room, room_ws

app = FastAPI(title="mychat", lifespan=mcp_tool.lifespan)  # the MCP SDK's tasks (stage 10)
app.include_router(countdown.router)  # stages 1 and 2 (lesson 04)
app.include_router(chat.router)  # stage 4 (lesson 06)
app.include_router(room.router)  # stage 7 (lesson 09)
app.include_router(room_ws.router)  # stage 8 (lesson 10)
app.include_router(replies.router)  # stage 9 (lesson 11)
### BEGIN STAGE 10
app.add_route("/mcp", mcp_tool.endpoint)  # the MCP tool `ask` (lesson 12)
### END STAGE 10

# Last, so that every route above wins: / is static/index.html (stage 3, lesson 05).
app.mount("/", StaticFiles(directory=Path(__file__).parent / "static", html=True), name="static")
