"""Several workers of one app behind one nginx: the shape of a scaled-out deployment, on loopback.

    workers = start_workers("server.apps.broadcast:app", "AB", env={"BROKER": "streams", ...})
    nginx = start_nginx(upstreams(workers))      # round robin; or upstream="ip_hash;"

Each worker is a separate uvicorn process with its own name in `WORKER_NAME` (the broadcast
app puts it in an `X-Worker` header), so a test can kill one by pid (`Server.kill()`) and
bring it back on the same port (`Server.restart()`).

`upstreams` turns off nginx's passive health check (`max_fails=0`). By default nginx marks a
worker that failed once as down for 10 s (`max_fails=1 fail_timeout=10s`), even after it is
back; if the other worker dies inside those 10 s, nginx has "no live upstreams" and answers
502 to everyone, which an `EventSource` takes as final (it stops reconnecting). With
`max_fails=0` a refused connection simply moves on to the next worker, which on loopback
costs nothing. (On a real network a dead host does not refuse, it times out: there, use
active health checks, or a short `fail_timeout`.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import redis as redis_sync

from server.course.launcher import Server, start_app


def start_workers(
    app: str, names: Iterable[str], *, env: Mapping[str, str] | None = None
) -> dict[str, Server]:
    """One uvicorn process of `app` per name, each with `WORKER_NAME` set to its name.

    They start side by side (each start mostly waits for its process to import the app and
    listen), so two workers take about as long as one."""
    names = list(names)

    def one(name: str) -> Server:
        return start_app(app, env={**(env or {}), "WORKER_NAME": name}, name=f"worker-{name}")

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def upstreams(workers: Mapping[str, Server] | Iterable[Server]) -> list[str]:
    """nginx upstream entries for `workers`, without the passive health check (see above)."""
    servers = workers.values() if isinstance(workers, Mapping) else workers
    return [f"{server.host}:{server.port} max_fails=0" for server in servers]


def shutdown_redis(redis: Server, timeout: float = 10.0) -> None:
    """Take Redis away the way maintenance does: `SHUTDOWN SAVE` writes its data to disk and
    exits; `redis.restart()` then loads it back (same folder), once: a later crash and restart
    starts empty (`start_redis`). Connections are refused meanwhile.

    The course's redis-server keeps no data on disk otherwise (`--save ""`, no AOF), so a
    crash (`redis.kill()`) loses every stream. In production, durability is a setting:
    `appendonly yes` with `appendfsync everysec` loses at most about a second of writes in a
    crash, `always` none that were acknowledged. A replica makes losing the machine survivable,
    but replication is asynchronous: `WAIT` only says how many replicas had a write, and
    Redis's documentation is explicit that a write acknowledged that way can still be lost in
    a failover (it does not make Redis strongly consistent).
    """
    client = redis_sync.Redis.from_url(redis.url, socket_timeout=timeout)
    try:
        client.shutdown(save=True)  # redis-py expects the connection to drop, and allows it
    finally:
        client.close()
    redis.process.wait(timeout)
