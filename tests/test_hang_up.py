"""`server.clients.hang_up`: a reader that leaves after a few events, and what the model did."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from server.apps import fake_openai
from server.clients.hang_up import hang_up, model_stats
from server.course.launcher import Server

QUESTION = "Tell me about SSE"
FULL = len(fake_openai.tokenize(fake_openai.reply_for(QUESTION)))
NO_DOTENV = {"OPENAI_API_KEY": "", "OPENAI_MODEL": ""}


def model(serve: Callable[..., Server]) -> Server:
    return serve(
        "server.apps.fake_openai:app", env={"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "50"}
    )


def test_the_relay_cancels_the_generation(serve: Callable[..., Server]) -> None:
    llm = model(serve)
    env = {**NO_DOTENV, "OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test"}
    relay = serve("server.apps.llm_relay:app", env=env)
    after = hang_up(f"{relay.url}/chat", llm.url, QUESTION)
    assert (after.finished, after.cancelled) == (0, 1)
    assert 3 <= after.tokens < FULL / 2 and after.ran_on < 1.0


def test_the_seeds_chat_runs_the_generation_to_its_end(serve: Callable[..., Server]) -> None:
    llm = model(serve)
    env = {**NO_DOTENV, "OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test"}
    seeds = serve("server.apps.seed_chat:app", env=env)
    after = hang_up(f"{seeds.url}/sse/chat", llm.url, QUESTION)
    assert (after.finished, after.cancelled, after.tokens) == (1, 0, FULL)
    assert model_stats(llm.url)["active"] == 0


def test_a_generation_that_runs_past_the_deadline_raises(serve: Callable[..., Server]) -> None:
    llm = serve(
        "server.apps.fake_openai:app", env={"FAKE_OPENAI_TTFT": "0", "FAKE_OPENAI_TPS": "5"}
    )
    env = {**NO_DOTENV, "OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test"}
    seeds = serve("server.apps.seed_chat:app", env=env)
    with pytest.raises(TimeoutError, match="still generating"):
        hang_up(f"{seeds.url}/sse/chat", llm.url, QUESTION, events=1, deadline=0.2)
