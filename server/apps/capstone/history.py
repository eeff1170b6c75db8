"""A conversation's history in Redis: a capped list per user and conversation, read on reload.

``cap:conv:<user>:<conversation>`` is a Redis list of JSON messages, oldest first. The user's
message goes in when the POST is accepted; the assistant's when its reply ends (done, error or
stopped, with the text sent so far), both inside the scripts of `replies`, so the history and
the reply's stream never disagree. ``LTRIM`` keeps the last ``HISTORY_CAP``: Redis memory
stays bounded whatever a user does. ``...:pending`` names a reply still being generated, so a
reloaded page reopens its stream.

The key includes the user, so a conversation id guessed or copied from another user's page
is simply empty: nobody reads another's history. (The seed keeps history in DynamoDB; the
production checklist compares.)
"""

from __future__ import annotations

import json
import re
from typing import Any

import redis.asyncio as aioredis

CONVERSATION_ID = re.compile(r"[0-9a-f]{32}")


async def read(redis: aioredis.Redis, user: str, conversation: str) -> dict[str, Any]:
    """``{"messages": [...], "pending": reply id or None}`` for one of the user's conversations."""
    key = f"cap:conv:{user}:{conversation}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lrange(key, 0, -1)
        pipe.get(f"{key}:pending")
        raw, pending = await pipe.execute()
    return {"messages": [json.loads(item) for item in raw], "pending": pending}


def upstream_messages(history: list[dict[str, Any]], keep: int) -> list[dict[str, str]]:
    """What goes to the model: the last `keep` messages that have text, role and content only."""
    wanted = [m for m in history if m.get("content")][-keep:] if keep else []
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in wanted]
