"""The checks of lesson 06's exercises pass the reference and fail a wrong answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from server.apps.llm_relay.relay import relay_events
from server.clients.llm_stream import Reply, assemble_reply
from server.course import llm_checks
from server.course.launcher import start_app
from server.sse import encode_json


@pytest.fixture(scope="module")
def client() -> Iterator[openai.OpenAI]:
    env = {"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "0"}
    with start_app("server.apps.fake_openai:app", env=env, name="fake_openai") as llm:
        client = openai.OpenAI(base_url=f"{llm.url}/v1", api_key="sk-test")
        yield client
        client.close()


def test_assemble_reply_check_passes_the_reference(client: openai.OpenAI) -> None:
    llm_checks.assemble_reply_check(client)(assemble_reply)


def test_assemble_reply_check_fails_a_reply_without_usage(client: openai.OpenAI) -> None:
    def no_usage(chunks: Any) -> Reply:
        reply = assemble_reply(chunks)
        reply.usage = None
        return reply

    with pytest.raises(AssertionError, match="usage is missing"):
        llm_checks.assemble_reply_check(client)(no_usage)


def test_relay_events_check_passes_the_reference() -> None:
    asyncio.run(llm_checks.relay_events_check(relay_events))


def test_relay_events_check_fails_an_error_event_without_status() -> None:
    async def no_status(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
        async for piece in relay_events(chunks):
            yield piece.replace(b'"status":503', b'"status":null')

    with pytest.raises(AssertionError, match="status_code belongs in it"):
        asyncio.run(llm_checks.relay_events_check(no_status))


def test_relay_events_check_runs_a_stub_that_is_a_coroutine() -> None:
    async def stub(chunks: AsyncIterator[dict[str, Any]]) -> None:
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        asyncio.run(llm_checks.relay_events_check(stub))


def test_relay_events_check_fails_a_relay_that_lets_the_error_escape() -> None:
    async def leaky(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    yield encode_json({"delta": choice["delta"]["content"]})
        yield encode_json({}, event="done")

    with pytest.raises((AssertionError, openai.APIError)):
        asyncio.run(llm_checks.relay_events_check(leaky))
