"""Seed 002's real-model path (`server.clients.real_model`): which model the lesson's
real-model cells use, from environment variables and ``.env``, with no network; and that the
path they run is correct code, against the local model standing in for a real one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from server.apps import fake_openai
from server.clients import real_model
from server.course.launcher import Server, start_app
from server.llm.config import upstream_from_env
from server.seed_texts import PROMPT, REPLY

NAMES = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL")


@pytest.fixture
def nothing_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No OPENAI_* variable, and a working directory with no ``.env`` in it or above."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_without_a_key_the_cells_are_skipped(nothing_set: Path) -> None:
    assert real_model.configured() is None
    assert "OPENAI_API_KEY" in real_model.SKIPPED and ".env" in real_model.SKIPPED


def test_a_key_in_the_environment_means_openai(
    nothing_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    upstream = real_model.configured()
    assert upstream is not None
    assert (upstream.base_url, upstream.api_key, upstream.model) == (
        None,
        "sk-from-env",
        "gpt-4o-mini",
    )
    assert real_model.client_for(upstream).base_url.host == "api.openai.com"


def test_a_key_in_dotenv_above_the_notebook_folder_is_found(
    nothing_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (nothing_set / ".env").write_text("OPENAI_API_KEY=sk-from-file\nOPENAI_MODEL=gpt-x\n")
    notebooks = nothing_set / "notebooks"
    notebooks.mkdir()
    monkeypatch.chdir(notebooks)  # a kernel runs in the notebook's folder
    upstream = real_model.configured()
    assert upstream is not None and (upstream.api_key, upstream.model) == ("sk-from-file", "gpt-x")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")  # the environment wins over the file
    assert real_model.configured().api_key == "sk-from-env"  # type: ignore[union-attr]


def test_a_gateway_is_named_by_its_base_url(nothing_set: Path) -> None:
    env = {"OPENAI_API_KEY": "gateway-key", "OPENAI_BASE_URL": "https://gw.example/api/v1"}
    upstream = real_model.configured(env)
    assert upstream is not None and upstream.base_url == "https://gw.example/api/v1"
    assert real_model.client_for(upstream).base_url.host == "gw.example"


@pytest.mark.parametrize(
    "env",
    [
        {"OPENAI_API_KEY": "sk-key", "OPENAI_MODEL": "gpt-x"},
        {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://localhost:11434/v1"},
        {"OPENAI_BASE_URL": "http://localhost:8000/v1"},
    ],
)
def test_the_relay_env_names_the_same_model(env: dict[str, str]) -> None:
    upstream = real_model.configured(env)
    assert upstream is not None
    assert upstream_from_env(real_model.relay_env(upstream)) == upstream


@pytest.fixture(scope="module")
def llm() -> Iterator[Server]:
    env = {"FAKE_OPENAI_TTFT": "0.05", "FAKE_OPENAI_TPS": "200"}
    with start_app("server.apps.fake_openai:app", env=env, name="fake_openai") as server:
        yield server


def test_time_reply_streams_and_times_a_reply(llm: Server) -> None:
    upstream = real_model.configured({"OPENAI_BASE_URL": f"{llm.url}/v1"})
    assert upstream is not None
    before = httpx2.get(f"{llm.url}/stats").json()
    timeline = real_model.time_reply(upstream, PROMPT)
    assert "".join(timeline.pieces) == REPLY
    assert 0.05 <= timeline.ttft < timeline.total  # the first token came when due, not last
    after = httpx2.get(f"{llm.url}/stats").json()
    assert after["requests"] == before["requests"] + 1 and after["active"] == 0


def test_report_times_the_configured_model(llm: Server) -> None:
    printed = real_model.report(PROMPT, {"OPENAI_BASE_URL": f"{llm.url}/v1"})
    assert printed.startswith(REPLY) and f"{llm.url}/v1" in printed, printed
    assert "first token after" in printed


def test_report_says_what_failed(llm: Server) -> None:
    env = {"OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": fake_openai.BAD_KEY}
    printed = real_model.report(PROMPT, env)
    assert "failed: AuthenticationError" in printed, printed


def test_report_without_a_model_is_the_skip_message(nothing_set: Path) -> None:
    assert real_model.report(PROMPT) == real_model.SKIPPED
