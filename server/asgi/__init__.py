"""The web glue the apps share: Starlette and FastAPI pieces over the sans-IO core in `server/`.

`server/sse.py` and `server/event_ids.py` know nothing of sockets or frameworks; these modules
put them on the wire (`sse_response`), bound what a client may cost (`send_deadline`,
`stream_slots`, `json_body`), and say no the same way everywhere (`refusals`).
"""
