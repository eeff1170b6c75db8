"""Stage 10 (lesson 12): the chat as an MCP tool, `ask`, over Streamable HTTP at /mcp.

    POST /mcp   tools/call "ask" {"prompt": ..., "key": ...} with an X-User header
                -> progress notifications (each one's message: the next delta), then the reply

The official SDK (`mcp`) speaks the protocol; this module adds one tool, which is one more
reader of stage 9's machinery: it starts a reply the way POST /replies does and follows the
reply's Redis stream, turning each delta into a progress notification. At the 2026-07-28
revision a call is one self-contained POST, no session: any worker can answer it.

A worker can die mid-call. Its client gets a stream that ends without a result, and this
revision has no resuming it ("Resumable SSE streams via `Last-Event-ID` are not supported"): the
client calls again with the same `key`. The key names the reply in Redis (per user), so the
second call joins the reply already being generated (taken over by a live worker, as in stage
9) instead of asking the model twice. A closed stream cancels the call, which stops following;
the reply's generation goes on, for that retry to join.
"""

import re
import uuid
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import ToolAnnotations
from pydantic import Field

from mychat.replies import LEASE_MS, TTL, WORKER, follow, generate, redis, spawn
from server.sse import Decoder

USER = re.compile(r"[\w.-]{1,64}")  # the X-User header, as in POST /replies
Prompt = Annotated[str, Field(min_length=1, max_length=2000)]
Key = Annotated[str, Field(pattern=r"^[\w.-]{1,64}$", description="the same key again: a retry")]
# The Host names this server answers (the SDK's DNS-rebinding protection). nginx passes
# `Host: $host`, the name without its port; deployed, list your own host names here.
HOSTS = ["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*"]
ORIGINS = ["http://127.0.0.1:*", "http://localhost:*"]

# The SDK sets up the root logger; at INFO it would log each request the openai client makes.
mcp = MCPServer("mychat", log_level="WARNING")


# The tool says what a retry does: the same arguments again have no further effect.
@mcp.tool(annotations=ToolAnnotations(read_only_hint=False, idempotent_hint=True))
async def ask(prompt: Prompt, key: Key, ctx: Context) -> str:
    """Ask the chat's model. Each progress notification's message is the reply's next delta;
    the result is the whole reply. After a broken call, call again with the same key."""
    ### BEGIN STAGE 10
    raise NotImplementedError("stage 10: your code here")
    ### END STAGE 10


# The endpoint, for app.py to route /mcp to. Its lifespan runs the SDK's task group.
endpoint = mcp.streamable_http_app(
    transport_security=TransportSecuritySettings(allowed_hosts=HOSTS, allowed_origins=ORIGINS)
)


def lifespan(app: object) -> AbstractAsyncContextManager[None]:
    """What the app runs while it serves: the SDK's request handling (stage 10)."""
    return mcp.session_manager.run()
