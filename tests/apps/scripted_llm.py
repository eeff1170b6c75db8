"""An OpenAI-compatible upstream that misbehaves exactly as asked, for the relay's failure tests.

The last user message names a script: a relay forwards the conversation, so a test asks the
relay for ``GET /chat?message=not-an-object`` and this upstream answers its 200, a role chunk,
one delta ("안"), then the script's bytes, then its ending: ``data: [DONE]``, nothing more
(``end``), a connection cut without finishing the body (``drop``), or silence (``hang``).
"""

import asyncio
import json

BIG = 2 * 1024 * 1024  # more than the relay's decoder holds for one event


def data(text):
    return f"data: {text}\n\n".encode()


START = [
    data('{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'),
    data('{"choices":[{"index":0,"delta":{"content":"안"}}]}'),
]
SCRIPTS = {
    "not-an-object": ([data('["a"]')], "done"),
    "a-number": ([data("5")], "done"),
    "choices-not-a-list": ([data('{"choices":{"0":{}}}')], "done"),
    "choice-not-an-object": ([data('{"choices":["a"]}')], "done"),
    "delta-not-an-object": ([data('{"choices":[{"delta":"a"}]}')], "done"),
    "content-not-text": ([data('{"choices":[{"delta":{"content":5}}]}')], "done"),
    "finish-not-text": ([data('{"choices":[{"delta":{},"finish_reason":1}]}')], "done"),
    "usage-not-an-object": ([data('{"choices":[],"usage":"lots"}')], "done"),
    "oversized": ([b"data: " + b"x" * BIG + b"\n\n"], "done"),
    "unpaired-surrogate": ([data('{"choices":[{"delta":{"content":"\\ud800"}}]}')], "done"),
    "no-done": ([], "end"),
    "drop": ([], "drop"),
    "hang": ([], "hang"),
    "fine": ([data('{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}')], "done"),
}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] != "/v1/chat/completions":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})
        return
    pieces, ending = SCRIPTS[json.loads(body)["messages"][-1]["content"]]
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for piece in [*START, *pieces]:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    if ending == "drop":
        raise RuntimeError("the upstream drops the connection (on purpose)")
    if ending == "hang":
        await asyncio.sleep(3600)
    last = data("[DONE]") if ending == "done" else b""
    await send({"type": "http.response.body", "body": last, "more_body": False})
