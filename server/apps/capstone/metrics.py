"""What to watch in production, in Prometheus's text format (`prometheus-client`).

Four numbers say whether a streaming chat is healthy: how many streams are open (capacity:
file descriptors, memory), tokens relayed (throughput, and the bill), time to first token
(what the user feels), and upstream errors (the model's provider, or our key). A few more
explain them: how replies ended, takeovers after a worker died, requests refused by a limit.

**Several workers: one ``/metrics`` per worker, scraped one by one.** Each worker counts in
its own memory and serves ``GET /metrics``; Prometheus scrapes every worker directly (not
through the load balancer, which would hand it a different worker each time) and adds the
``instance`` label, and ``sum(rate(capstone_tokens_relayed_total[1m]))`` adds them up.
`prometheus_client`'s multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) solves another problem,
workers forked by gunicorn on one host sharing a directory of mmap files; these workers are
separate processes, as they would be on separate hosts, so it does not apply. A counter then
restarts at 0 with its worker, which ``rate()`` understands as a reset.

Each app gets its own `CollectorRegistry` (not the library's global one), so tests can build
several apps in one process.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """This worker's metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.open_streams = Gauge(
            "capstone_open_streams", "Reply streams open to browsers now", registry=r
        )
        self.tokens = Counter(
            "capstone_tokens_relayed", "Tokens relayed from the upstream into Redis", registry=r
        )
        self.ttft = Histogram(
            "capstone_time_to_first_token_seconds",
            "From the POST accepted to the reply's first token in Redis",
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "capstone_upstream_errors",
            "Upstream failures, by kind (status code, timeout, connection, stream)",
            ["kind"],
            registry=r,
        )
        self.replies = Counter(
            "capstone_replies_ended",
            "Replies this worker ended, by outcome (done, error, stopped)",
            ["outcome"],
            registry=r,
        )
        self.takeovers = Counter(
            "capstone_takeovers",
            "Replies this worker adopted after their owner stopped renewing its lease",
            registry=r,
        )
        self.refused = Counter(
            "capstone_requests_refused",
            "Requests refused, by reason (rate, busy, too_large, bad_request, session)",
            ["reason"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
