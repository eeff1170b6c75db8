"""`server.course.chat_page`: lesson 06's chat page driven in Chromium, as its cell drives it.

The page's safety is checked in `test_chat_markdown.py` (sync Playwright, both transports);
this runs the async helper the notebook calls, in a loop of its own, and shows that what it
reports can fail: a reply of plain paragraphs has no <pre>, and model HTML yields no element.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from server.course.chat_page import relayed, render_streamed
from server.course.launcher import Server, start_app
from server.sse import Decoder

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def relay(chromium: None) -> Iterator[Server]:
    with start_app("server.apps.fake_openai:app", name="fake_openai") as llm:
        env = {"OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": ""}
        with start_app("server.apps.llm_relay:app", env=env, name="llm_relay") as server:
            yield server


def test_relayed_cuts_the_reply_into_deltas_then_done() -> None:
    events = Decoder().feed(relayed("abcdefg", 3).encode())
    assert [e.data for e in events[:-1]] == [
        '{"delta": "abc"}',
        '{"delta": "def"}',
        '{"delta": "g"}',
    ]
    assert events[-1].event == "done"


def test_html_and_a_fence(relay: Server) -> None:
    reply = 'Hi <img src=x onerror="window.pwned = true"> there.\n\n```sh\nls <dir>\n```\n'
    shown = asyncio.run(render_streamed(f"{relay.url}/", reply))
    assert shown.elements == ["p", "pre", "code"] and not shown.script_ran
    assert shown.code_blocks == ["ls <dir>"]
    assert "&lt;img src=x" in shown.html


def test_paragraphs_only(relay: Server) -> None:
    shown = asyncio.run(render_streamed(f"{relay.url}/", "One.\n\nTwo `x`.", size=1))
    assert shown.elements == ["p", "p", "code"] and shown.code_blocks == []
