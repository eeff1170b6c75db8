"""Stage 10 (lesson 12): the chat as an MCP tool, `ask`, answered by any worker, kept across a kill.

How it is checked: stage 9's servers (a throwaway redis-server, the course's fake model, here
0.5 s before its first token then 20 a second, and two workers of your app, A and B), driven
with the official MCP SDK's client (`mcp.Client` over `streamable_http_client`, at the
sessionless revision `mcp_types.LATEST_PROTOCOL_VERSION`), each client naming its user in an
`X-User` header. First on the workers directly: `tools/list`, one call on A (a progress
notification per delta, in order, then the model's exact reply), the same call again on B
with the same key (the same reply, and the model is not asked again), another user with that
key (their own reply), and bad calls refused. Then through the learner's nginx in front of
both: CALLS calls at once, and A SIGKILLed once every call has had its first progress
notification.

What the kill proves: a call A was serving ends without a result; the checker calls again
with the same key, as an agent would, nginx sends it to B, and it completes with the exact
reply and its progress in order (B takes the reply over as in stage 9). It does not prove
anything about a client that retries with a new key, which asks the model twice: lesson 12's
stage text says why the key is the client's to keep.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx2

# The SDK's client imports jsonschema at its first tool result, seconds on a loaded machine:
# imported with this module, before the check's deadline runs.
import jsonschema  # type: ignore[import-untyped]  # noqa: F401
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import LATEST_PROTOCOL_VERSION, CallToolResult, TextContent

from server.course.stages.nginx_project import start_project_nginx
from server.course.stages.reply_clients import expected, learn_replies
from server.course.stages.run import Missed, StageRun
from server.course.stages.stage_9 import model_requests, start_servers
from server.course.stages.waits import wait_until

TITLE = "the chat as an MCP tool: progress while the reply is generated, any worker, retried by key"
LESSON = "12_mcp_streamable_http"
DEADLINE = 60.0
NEEDS = ("nginx", "redis")
MODEL = {"FAKE_OPENAI_TTFT": "0.5", "FAKE_OPENAI_TPS": "20", "FAKE_OPENAI_TOKENS": "30"}
PROMPT = "What does an MCP tool stream?"
OTHER = "Whose reply is this?"
CALLS = 6
TIMEOUT = httpx2.Timeout(20, connect=5)  # above the quiet seconds of a takeover (stage 9's lease)


def call_prompt(n: int) -> str:
    return f"{PROMPT} (call {n})"


@dataclass
class Call:
    """One `ask` call by one user: the progress of each attempt, and how it ended."""

    user: str
    prompt: str
    key: str
    attempts: list[list[tuple[float, str]]] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # why each attempt without a result ended
    result: CallToolResult | None = None
    at_first: Callable[[], Awaitable[object]] | None = None  # asked at the first notification
    first_seen: asyncio.Future[object] | None = None  # what it answers

    @property
    def progressed(self) -> int:
        return len(self.attempts[-1]) if self.attempts else 0


def connect(url: str, http: httpx2.AsyncClient) -> Client:
    """The SDK's client for the MCP endpoint at `url`, at the sessionless revision."""
    return Client(streamable_http_client(url, http_client=http), mode=LATEST_PROTOCOL_VERSION)


async def ask(url: str, call: Call, *, tries: int = 1, headers: bool = True) -> Call:
    """Call the tool `ask` with the SDK's client; a call that breaks is called again, same key."""
    named = {"X-User": call.user} if headers else {}
    with unwrapped():
        async with (
            httpx2.AsyncClient(headers=named, timeout=TIMEOUT) as http,
            connect(url, http) as mcp,
        ):
            for _ in range(tries):
                if await attempt(mcp, call):
                    break
    return call


async def attempt(mcp: Client, call: Call) -> bool:
    """One tools/call of `ask`: True when it has its result, False when the call broke."""
    seen: list[tuple[float, str]] = []
    call.attempts.append(seen)

    async def record(progress: float, total: float | None, message: str | None) -> None:
        # The SDK runs each notification's callback as a task of its own, in the order they
        # came: one that awaits anything before noting its notification lets the next pass it.
        seen.append((progress, message or ""))
        if call.at_first is not None and call.first_seen is None:
            call.first_seen = asyncio.ensure_future(call.at_first())

    arguments = {"prompt": call.prompt, "key": call.key}
    try:
        call.result = await mcp.call_tool("ask", arguments, progress_callback=record)
    except MCPError as error:
        call.broken.append(error.message)
        return False
    return True


@contextmanager
def unwrapped() -> Iterator[None]:
    """The SDK's client runs a task group, which wraps what its block raises: unwrap a lone one."""
    try:
        yield
    except BaseExceptionGroup as group:
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        if error is group or not isinstance(error, Exception):
            raise
        raise error from None


def text_of(result: CallToolResult) -> str:
    return "".join(part.text for part in result.content if isinstance(part, TextContent))


def problems(call: Call) -> str:
    """What is wrong with a finished call, judged against the model's reply; '' if nothing."""
    if call.result is None:
        return f"no result after {len(call.attempts)} calls: {call.broken[-1]}"
    text, want = text_of(call.result), expected(call.prompt)
    if call.result.is_error:
        raised = " (`ask` raised an exception other than ToolError)" if "ask" in text[-4:] else ""
        return f"an error result: {text[:200]!r}{raised}"
    if text != want:
        return f"the result is {text[:80]!r}, the model said {want[:80]!r}"
    progress = call.attempts[-1]
    if not progress:
        return "the result, but no progress notification before it"
    values = [value for value, _ in progress]
    if any(b <= a for a, b in itertools.pairwise(values)):
        return f"progress went {values[:10]}: it must increase with every notification"
    said = "".join(message for _, message in progress)
    if said != want:
        return f"the progress messages say {said[:80]!r}, the reply is {want[:80]!r}"
    for broken in call.attempts[:-1]:
        before = "".join(message for _, message in broken)
        if not want.startswith(before):
            return f"a broken attempt's progress said {before[:80]!r}, not the reply's start"
    return ""


async def check(run: StageRun) -> None:
    fake, a, b = await start_servers(run, MODEL)
    async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
        with run.step(
            "POST /mcp is your app's MCP endpoint: the SDK's client lists the tool `ask`",
            hint="in mychat/app.py, route /mcp to the SDK's endpoint: "
            'app.add_route("/mcp", mcp_tool.endpoint)',
        ):
            try:
                with unwrapped():
                    async with connect(f"{a.url}/mcp", http) as mcp:
                        tools = (await mcp.list_tools()).tools
            except MCPError as error:
                raw = await http.post(f"{a.url}/mcp", json={})  # what the SDK saw, in HTTP
                raise Missed(
                    f"POST /mcp: {raw.status_code} {raw.text[:80]!r}; the SDK's client says "
                    f"{error.message!r} (JSON-RPC code {error.code})"
                ) from None
            names = [tool.name for tool in tools]
            if "ask" not in names:
                raise Missed(f"the tools listed: {names}")

        await learn_replies(fake, [PROMPT, OTHER, *(call_prompt(n) for n in range(CALLS))])

        with run.step(
            "tools/call `ask` on worker A: a progress notification per delta as the model "
            "generates it (progress going up, message = the delta), then the result: the "
            "model's exact reply",
            hint="in mcp_tool.py's `ask`: start the reply as post_reply does (its prompt, its "
            "lease, spawn(generate(reply, prompt))), then `async for chunk in follow(reply, "
            'prompt, "0-0")`, feed each chunk to a Decoder, and for each delta '
            "`await ctx.report_progress(len(deltas), message=delta)`; at `done`, return the "
            "joined deltas",
        ):

            async def generating() -> int:
                return int((await http.get(f"{fake.url}/stats")).json()["active"])

            first = Call("ann", PROMPT, "question-1", at_first=generating)
            wrong = problems(await ask(f"{a.url}/mcp", first))
            if wrong:
                raise Missed(wrong)
            if not (first.first_seen and await first.first_seen):
                raise Missed(
                    "the first progress notification came after the model had finished: "
                    "the whole reply at once, not each delta as it is generated"
                )

        with run.step(
            "the same call again, same key, on worker B (a retry after a lost answer): the same "
            "reply with its progress, and the model is not asked again",
            hint='the key names the reply in Redis: `known = await redis.set(f"ask:{user}:'
            '{key}", reply, nx=True, get=True, ex=TTL)`; if it returns an id, follow that '
            "reply instead of starting one",
        ):
            asked = await model_requests(http, fake, at_least=1)
            again = await ask(f"{b.url}/mcp", Call("ann", PROMPT, "question-1"))
            wrong = problems(again)
            if wrong:
                raise Missed(wrong)
            more = await model_requests(http, fake) - asked
            if more:
                raise Missed(f"the model was asked {more} more time(s) for the repeated call")

        with run.step(
            "another user's call with that same key gets their own reply, never the first user's",
            hint="scope the key to its user: the Redis name is ask:<user>:<key>, the user from "
            'the X-User header (`ctx.headers.get("x-user")`)',
        ):
            other = await ask(f"{a.url}/mcp", Call("bob", OTHER, "question-1"))
            if other.result is not None and text_of(other.result) == expected(PROMPT):
                raise Missed("bob got ann's reply")
            wrong = problems(other)
            if wrong:
                raise Missed(f"bob's call: {wrong}")

        with run.step(
            "bad calls are error results that say why: no X-User header, an empty prompt, "
            "a key that is not 1-64 letters, digits, '.', '_' or '-'",
            hint="keep `ask`'s signature (Prompt and Key check themselves) and refuse a "
            'missing or malformed X-User with `raise ToolError("send an X-User header ...")`',
        ):
            asked = await model_requests(http, fake)
            bad = {
                "no X-User": await ask(f"{b.url}/mcp", Call("", PROMPT, "k"), headers=False),
                "an empty prompt": await ask(f"{b.url}/mcp", Call("ann", "", "k")),
                "key '../k'": await ask(f"{b.url}/mcp", Call("ann", PROMPT, "../k")),
            }
            accepted = {
                what: call.broken[-1] if call.result is None else text_of(call.result)[:60]
                for what, call in bad.items()
                if call.result is None or not call.result.is_error
            }
            if accepted:
                raise Missed("; ".join(f"{what}: {said!r}" for what, said in accepted.items()))
            more = await model_requests(http, fake) - asked
            if more:
                raise Missed(f"the model was asked {more} time(s) for bad calls")

        with run.step(
            "your nginx (mychat/nginx.conf) passes MCP calls to both workers",
            hint="stage 6's nginx.conf, with `proxy_buffering off` (the calls' progress is an "
            "event stream); `make catch-up STAGE=10` fills it in if you skipped lesson 08",
        ):
            nginx = await asyncio.to_thread(start_project_nginx, run, [a.port, b.port])
            through = await ask(f"{nginx.url}/mcp", Call("ann", PROMPT, "question-1"))
            wrong = problems(through)
            if wrong:
                raise Missed(wrong)

        with run.step(
            f"{CALLS} calls at once through nginx, worker A SIGKILLed after each call's first "
            "progress notification: a broken call, called again with its key, completes with "
            "the exact reply and its progress in order",
            hint="a retried call must join its reply, and a reply whose worker died must be "
            "finished by another: `ask` follows the reply with stage 9's `follow`, which "
            "takes the lease over after a quiet second",
        ):
            calls = [Call(f"user-{n}", call_prompt(n), f"call-{n}") for n in range(CALLS)]
            running = asyncio.gather(*(ask(f"{nginx.url}/mcp", c, tries=3) for c in calls))
            try:
                ready = await wait_until(
                    lambda: all(c.progressed for c in calls) or running.done(), within=15
                )
                if running.done():
                    running.result()  # the checker's own failure, raised before the kill
                if not ready:
                    slow = [c.user for c in calls if not c.progressed]
                    raise Missed(f"{', '.join(slow)} had no progress notification after 15 s")
                await asyncio.to_thread(a.kill)
                await asyncio.wait_for(asyncio.shield(running), timeout=25)
            except TimeoutError:
                stuck = [c for c in calls if c.result is None]
                raise Missed(
                    f"{len(stuck)} of {CALLS} calls had no result 25 s after the kill; "
                    f"{stuck[0].user} had {stuck[0].progressed} progress notifications"
                ) from None
            finally:
                running.cancel()  # nothing left running, and its outcome collected
                await asyncio.gather(running, return_exceptions=True)
            for call in calls:
                wrong = problems(call)
                if wrong:
                    raise Missed(f"{call.user} ({len(call.attempts)} calls): {wrong}")
            if not any(call.broken for call in calls):
                raise Missed("no call broke when A was killed: nginx sent none of them to A")
