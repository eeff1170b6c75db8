"""Generating a reply: upstream tokens into the reply's Redis stream, owned under a lease.

The worker that accepts a POST starts the generation and **owns** it: a lease in Redis
(`replies`) that it renews every third of ``LEASE_SECONDS``. Every token it writes is fenced
by that lease. The browser never reads from this task: it reads the reply's Redis stream,
through whichever worker serves its GET, so the connection and the generation can live on
different workers, and either can die.

**When the owner dies** (SIGKILL: no ``finally`` runs, nothing is released), its lease runs
out. Every worker sweeps the leases every ``SWEEP_SECONDS``; the first to find one expired
claims it (one script: only one can) and **restarts the upstream request** with the same
messages and the same ``seed``, **skipping the tokens already in the stream**. That is exact
when the upstream is deterministic for a seed, as the course's fake model is (the same prompt
and seed give the same tokens, tested). A real model is not guaranteed to be (OpenAI's
``seed`` is best effort), so the adopter checks every skipped token against the text already
sent; at the first difference it ends the reply with an ``error`` event ("the model did not
repeat itself; send the message again") instead of splicing two different answers. Nothing
already delivered is ever changed, and no token is written twice: the stream holds token i
only once (`scripts.APPEND` checks the index).

Why not hand the live upstream connection over? It dies with its process: an HTTP response
cannot move. Why not store the upstream's response for replay? It is the stream itself:
what was delivered stays in Redis; only what was not yet generated is asked for again. The
price is the tokens generated twice (the skipped ones), paid once per takeover, in money and
in time: the reader waits for the lease to run out, then for the model to get past them.

A graceful stop (SIGTERM, a deploy) releases this worker's leases at once, so another worker
adopts them at its next sweep instead of after a whole lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionMessageParam
from redis.exceptions import RedisError

from server.apps.capstone.metrics import Metrics
from server.apps.capstone.replies import LEASES, Keys, Replies
from server.apps.capstone.scripts import ClaimOutcome, Outcome
from server.apps.capstone.settings import Settings
from server.llm.chunks import upstream_chunks
from server.llm.upstream import CLOSE_TIMEOUT, Upstream, close_within, explain, status_of
from server.redis_client import RECONNECT_EVERY, REDIS_DOWN

log = logging.getLogger("uvicorn.error")
SWEEP_BACKOFF_MAX = 5.0  # seconds between sweeps at most, while they fail


class Stop(Exception):
    """This worker must stop generating the reply: stopped by the user, or the lease is lost."""


class Generations:
    """This worker's generations, and the sweep that adopts other workers' orphans."""

    def __init__(
        self,
        replies: Replies,
        client: openai.AsyncOpenAI,
        upstream: Upstream,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.replies, self.client, self.upstream = replies, client, upstream
        self.settings, self.metrics = settings, metrics
        self.me = settings.worker
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.closing = False
        self.sweep_error: str | None = None  # the last sweep's failure, until one succeeds

    def launch(self, keys: Keys, start: int = 0, attempt: int = 1) -> None:
        """Generate `keys.reply` in this worker, from token `start` on (a takeover's skip)."""
        task = asyncio.create_task(self._run(keys, start, attempt), name=f"reply {keys.reply}")
        self.tasks[keys.reply] = task
        task.add_done_callback(lambda _: self.tasks.pop(keys.reply, None))

    def cancel(self, reply: str) -> bool:
        """Stop generating `reply` now, if this worker does (Stop pressed here)."""
        task = self.tasks.get(reply)
        if task is not None:
            task.cancel()
        return task is not None

    async def sweep_forever(self) -> None:
        """Adopt every reply whose lease ran out. Runs once per worker, for its lifetime.

        Redis unreachable: the next sweep tries again. Any other failure (Redis up but refusing:
        WRONGTYPE, READONLY after a failover, a script error; or a bug) is logged, kept in
        `sweep_error` for `/readyz` to report, and the sweeps go on, further apart each time
        (up to `SWEEP_BACKOFF_MAX` s) until one succeeds: a task that died here would leave this
        worker adopting nothing while it said it was ready."""
        pause = self.settings.sweep_seconds
        while not self.closing:  # (a cancellation lost in a Redis call cannot keep it going)
            await asyncio.sleep(pause)
            try:
                await self.sweep()
            except REDIS_DOWN:
                continue  # /readyz's own ping says so
            except Exception as error:
                self.sweep_error = f"{type(error).__name__}: {error}"
                pause = min(pause * 2, max(SWEEP_BACKOFF_MAX, self.settings.sweep_seconds))
                log.warning("sweep failed (%s); the next in %.1f s", self.sweep_error, pause)
                continue
            if self.sweep_error is not None:
                log.info("sweeping again after: %s", self.sweep_error)
            self.sweep_error, pause = None, self.settings.sweep_seconds

    async def sweep(self) -> int:
        """One sweep: claim the expired leases; how many this worker adopted."""
        seconds, micros = await self.replies.redis.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        expired = await self.replies.redis.zrangebyscore(LEASES, "-inf", now, start=0, num=20)
        adopted = 0
        for reply in map(str, expired):
            if reply in self.tasks:
                continue
            claimed = await self.replies.claim(
                reply, self.me, self.settings.lease_seconds, self.settings.max_takeovers + 1
            )
            if claimed.outcome is not ClaimOutcome.OK:
                continue  # renewed meanwhile, or ended
            keys = await self.replies.keys_of(reply)
            if keys is not None:
                start, attempt = claimed.start, claimed.attempt
                log.info("adopting reply %s at token %d (attempt %d)", reply, start, attempt)
                self.metrics.takeovers.inc()
                self.launch(keys, start, attempt)
                adopted += 1
        return adopted

    async def shutdown(self) -> None:
        """Stop generating, and release the leases so another worker adopts at once."""
        self.closing = True
        tasks = dict(self.tasks)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for reply in tasks:
            with contextlib.suppress(*REDIS_DOWN):
                await self.replies.release(reply, self.me)

    async def _run(self, keys: Keys, start: int, attempt: int) -> None:
        lease = asyncio.create_task(self._keep_lease(keys.reply, asyncio.current_task()))
        try:
            if attempt > self.settings.max_takeovers + 1:
                await self._end(keys, "error", {"message": "The reply was abandoned: its "
                                "workers kept stopping. Send the message again."})  # fmt: skip
                return
            deadline = asyncio.timeout(self.settings.max_reply_seconds)
            try:
                async with deadline:
                    await self._generate(keys, start)
            except TimeoutError:
                if not deadline.expired():
                    raise
                await self._end(keys, "error", {"message": "The reply took longer than "
                                f"{self.settings.max_reply_seconds:g} s (MAX_REPLY_SECONDS) "
                                "and was ended; the text above is what came."})  # fmt: skip
        except Stop:
            pass  # stopped by the user (the stream already says so), or adopted elsewhere
        except asyncio.CancelledError:
            pass  # Stop on this worker, a lost lease, or a shutdown (leases released)
        except REDIS_DOWN as error:
            log.warning("reply %s: Redis unreachable (%r); another worker adopts it",
                        keys.reply, error)  # fmt: skip
        except Exception as error:  # a bug: still end the reply, with a message
            log.exception("reply %s failed", keys.reply)
            with contextlib.suppress(RedisError):  # down, or full (maxmemory): logged above
                message = f"The server failed ({type(error).__name__}). Send it again."
                await self._end(keys, "error", {"message": message})
        finally:
            lease.cancel()

    async def _keep_lease(self, reply: str, task: asyncio.Task[Any] | None) -> None:
        """Renew the lease; cancel the generation once it is not ours or not running.

        It also ends by itself once the generation has ended, cancelled or not: a renewal
        that outlived its generation would hold the reply forever, and a cancellation can be
        lost inside a Redis call whose own timeout fires at the same moment (Python 3.11's
        `asyncio.timeout`), which a heavily loaded bench run did show.
        """
        while task is not None and not task.done():
            await asyncio.sleep(self.settings.lease_seconds / 3)
            if task.done():
                return
            try:
                status = await self.replies.renew(reply, self.me, self.settings.lease_seconds)
            except REDIS_DOWN:
                continue  # writes are fenced: if the lease runs out meanwhile, nothing breaks
            if status != Outcome.OK and task is not None:
                task.cancel()
                return

    async def _generate(self, keys: Keys, start: int) -> None:
        record = await self.replies.record(keys.reply)
        if "messages" not in record:  # it ended (END drops them) since it was claimed
            raise Stop(record.get("status", "expired"))
        sent_text = (await self.replies.redis.get(keys.text) or "") if start else ""
        messages = cast("list[ChatCompletionMessageParam]", json.loads(record["messages"]))
        index, skipped, usage, finish = 0, "", None, None
        try:
            async with self.client.chat.completions.with_streaming_response.create(
                model=self.upstream.model,
                messages=messages,
                stream=True,
                seed=int(record["seed"]),
                stream_options={"include_usage": True},
            ) as response:
                try:
                    async for chunk in upstream_chunks(response):
                        usage = chunk.get("usage") or usage
                        for choice in chunk.get("choices") or ():
                            finish = choice.get("finish_reason") or finish
                            delta = (choice.get("delta") or {}).get("content")
                            if not delta:
                                continue
                            if index < start:  # a takeover: already in the stream
                                skipped += delta
                                if not sent_text.startswith(skipped):
                                    raise Stop(await self._diverged(keys, start))
                            else:
                                await self._append(keys, index, delta, record, start)
                            index += 1
                finally:
                    await close_within(response, CLOSE_TIMEOUT)
        except openai.APIError as error:
            self.metrics.upstream_errors.labels(_kind(error, index)).inc()
            log.warning("reply %s: upstream error after %d tokens: %r", keys.reply, index, error)
            message = explain(error, self.upstream) if index == 0 else (
                f"The model stopped after {index} pieces of text: {error.message} "
                "The reply above is incomplete.")  # fmt: skip
            await self._end(keys, "error", {"message": message, "status": status_of(error)})
            return
        if index < start:
            raise Stop(await self._diverged(keys, start))
        await self._end(keys, "done", {"finish_reason": finish, "usage": usage, "tokens": index})

    async def _append(
        self, keys: Keys, index: int, delta: str, record: dict[str, str], start: int
    ) -> None:
        write = uuid.uuid4().hex  # the same for every retry of this write
        for _ in range(max(1, int(self.settings.lease_seconds / RECONNECT_EVERY))):
            try:
                outcome = await self.replies.append(keys.reply, self.me, index, delta, write)
                break
            except REDIS_DOWN:
                await asyncio.sleep(RECONNECT_EVERY)
        else:
            raise RedisGone
        if outcome != Outcome.OK:
            raise Stop(outcome)
        self.metrics.tokens.inc()
        if index == 0 and start == 0:
            self.metrics.ttft.observe(max(0.0, time.time() - int(record["created"]) / 1000))

    async def _diverged(self, keys: Keys, sent: int) -> str:
        message = (
            f"The worker generating this reply stopped, and the model did not repeat the "
            f"first {sent} pieces of text when asked again, so the reply cannot be "
            "continued exactly. The text above is what was sent; send the message again."
        )
        await self._end(keys, "error", {"message": message})
        return "diverged"

    async def _end(self, keys: Keys, event: str, data: dict[str, Any]) -> None:
        if await self.replies.end(keys, event, data, owner=self.me) == Outcome.OK:
            self.metrics.replies.labels(event).inc()


class RedisGone(ConnectionError):
    """Redis stayed unreachable for a whole lease: leave the reply to whoever adopts it."""


def _kind(error: openai.APIError, index: int) -> str:
    if isinstance(error, openai.APIStatusError):
        return str(error.status_code)
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection"
    return "stream" if index else "other"
