"""`read_with_resume` forgets a `Last-Event-ID` the server has reset, as a browser does.

An event whose `id:` field is empty sets the stream's last event ID to "" (WHATWG HTML 9.2.6),
and an `EventSource` then reconnects with no `Last-Event-ID` header at all. The client kept the
old id instead (`decoder.last_event_id or last_event_id`), so a server that said "start me
over" was asked to resume after an id it had just withdrawn.
"""

from __future__ import annotations

import httpx2

from server.clients.resume import read_with_resume

# What the server sends on each connection: an id, then the reset, then a last event.
ANSWERS = [
    b"retry: 0\nid: 7\ndata: a\n\n",
    b"id\ndata: b\n\n",  # `id` with no value: the last event ID is "" again
    b"data: c\n\n",
]


def test_a_reset_id_is_not_sent_back() -> None:
    sent: list[str | None] = []

    def server(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.headers.get("last-event-id"))
        body = ANSWERS[len(sent) - 1]
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    with httpx2.Client(transport=httpx2.MockTransport(server)) as client:
        events = read_with_resume("http://room.test/events", 3, client=client)
    assert [event.data for event in events] == ["a", "b", "c"]
    assert sent == [None, "7", None], "after the reset, no Last-Event-ID (as a browser)"
