"""Every page the course serves, scanned with axe-core in Chromium after a streamed reply.

Each page is driven as a learner drives it (a message typed, Enter or Send, the reply streamed
to its end), then `server.course.axe.scan_sync` runs every axe-core rule on the whole document.
A violation of impact "serious" or "critical" fails the test; a "moderate" one fails unless
`ALLOWED` names its rule with the reason it is accepted.

Then the announce-once behaviour, read from the DOM by a MutationObserver installed before the
page's own script: every token lands in a reply marked `aria-busy="true"`, the reply is not busy
once `done` has come, and the page's status region (`role="status"`) says one thing per reply.
And the keyboard: Tab reaches the message box, Enter sends, Tab reaches an enabled Stop while
the reply streams, and focus is back in the message box when the reply ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from server.course.axe import failing, report, scan_sync
from server.course.capstone_stack import Capstone, start_capstone
from server.course.launcher import Server, start_app

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ALLOWED: dict[str, str] = {}  # rule id -> why a "moderate" violation of it is accepted

# Installed before the page's scripts. For every change of the page: which elements hold
# reply text that is not busy (a token a screen reader may read out on its own), and each new
# text of a role="status" region.
WATCH = """
window.__a11y = { unbusy: [], said: [], busy: [] };
const REPLIES = "#reply, .assistant";
const busyAt = (records, i, reply) => {  // reply's aria-busy when records[i] happened
  const later = records.slice(i + 1).find((r) => r.type === "attributes"
    && r.attributeName === "aria-busy" && r.target === reply);
  return later ? later.oldValue : reply.getAttribute("aria-busy");
};
new MutationObserver((records) => records.forEach((record, i) => {
  const node = record.target.nodeType === 1 ? record.target : record.target.parentElement;
  if (!node) return;
  const reply = node.closest(REPLIES);
  if (reply && record.type !== "attributes" && reply.textContent
      && busyAt(records, i, reply) !== "true") {
    window.__a11y.unbusy.push(reply.textContent);
  }
  if (record.type === "attributes" && record.attributeName === "aria-busy"
      && node.matches(REPLIES)) {
    window.__a11y.busy.push(record.oldValue);
  }
  if (node.closest("[role=status]") && record.type !== "attributes") {
    const text = record.type === "characterData" ? record.target.data
      : [...record.addedNodes].map((n) => n.textContent).join("");
    if (text.trim()) window.__a11y.said.push(text.trim());
  }
})).observe(document, {
  subtree: true, childList: true, characterData: true, attributes: true, attributeOldValue: true,
});
"""


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.add_init_script(WATCH)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def assert_no_violations(page: Any) -> None:
    found = scan_sync(page)
    assert not failing(found, ALLOWED), report(found)


# --- the servers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lesson_page(chromium: None) -> Iterator[Server]:
    with start_app("server.apps.fastapi_streams:app", name="fastapi_streams") as server:
        yield server


@pytest.fixture(scope="module")
def room(chromium: None) -> Iterator[Server]:
    env = {"BROKER": "memory", "TOKEN_DELAY": "0.02"}
    with start_app("server.apps.ws_chat:app", env=env, name="ws_chat") as server:
        yield server


@pytest.fixture(scope="module")
def paced_relay(chromium: None) -> Iterator[Server]:
    """Lesson 06's relay, the model paced (a 10 s reply) so that Stop is pressed mid-reply."""
    env = {"FAKE_OPENAI_TTFT": "0.1", "FAKE_OPENAI_TPS": "10", "FAKE_OPENAI_TOKENS": "100"}
    with start_app("server.apps.fake_openai:app", env=env, name="fake_openai") as llm:
        env = {"OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": ""}
        with start_app("server.apps.llm_relay:app", env=env, name="llm_relay") as server:
            yield server


@pytest.fixture(scope="module")
def capstone(chromium: None) -> Iterator[Capstone]:
    fake = {"FAKE_OPENAI_TPS": "40", "FAKE_OPENAI_TTFT": "0.1", "FAKE_OPENAI_TOKENS": "20"}
    with start_capstone(workers=1, fake_env=fake) as running:
        yield running


@pytest.fixture(scope="module")
def mychat(chromium: None) -> Iterator[Server]:
    """The learner's reference project (solutions/mychat), its model the course's fake one."""
    with start_app("server.apps.fake_openai:app", name="fake_openai") as llm:
        env = {"OPENAI_BASE_URL": f"{llm.url}/v1", "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": ""}
        args = ("--app-dir", str(ROOT / "solutions"))
        with start_app("mychat.app:app", env=env, args=args, name="mychat") as server:
            yield server


@pytest.fixture(scope="module")
def stamped(chromium: None) -> Iterator[Server]:
    with start_app("server.apps.stamped_events:app", name="stamped_events") as server:
        yield server


# --- each page, after a streamed reply ----------------------------------------------------


def test_lesson_05_page(tab: Any, lesson_page: Server) -> None:
    tab.goto(f"{lesson_page.url}/?src=events%3Flimit%3D3%26interval%3D0.05")
    tab.wait_for_function("document.querySelectorAll('#messages li').length === 3")
    tab.fill("#message", "hello")
    tab.press("#message", "Enter")
    tab.wait_for_function("document.querySelector('#chat-status').textContent.startsWith('done')")
    assert_no_violations(tab)
    assert tab.evaluate("window.__a11y.unbusy") == []
    assert tab.locator("#reply").get_attribute("aria-busy") == "false"


def test_lesson_08_page(tab: Any, stamped: Server) -> None:
    """The blank page lesson 08 opens its EventSource from (no streamed reply of its own)."""
    tab.goto(f"{stamped.url}/")
    assert_no_violations(tab)


def chat_by_keyboard(page: Any, ended: str) -> None:
    """Tab to the message box, type, Enter; wait for `ended`. Focus must then be in the box."""
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "message"
    page.keyboard.press("Control+A")
    page.keyboard.type("hello")
    page.keyboard.press("Enter")
    page.wait_for_function(ended)
    assert page.evaluate("document.activeElement.id") == "message"


def announced_once(page: Any, replies: int = 1) -> None:
    seen = page.evaluate("window.__a11y")
    assert seen["unbusy"] == [], "reply text changed while not aria-busy"
    assert "true" in seen["busy"], "the reply was never aria-busy"
    busy = page.locator("#reply, .assistant").last.get_attribute("aria-busy")
    assert busy != "true", "the reply is still aria-busy after it ended"
    assert len(seen["said"]) == replies, seen["said"]


@pytest.mark.parametrize("transport", ["fetch", "eventsource"])
def test_lesson_06_chat(tab: Any, relay: Server, transport: str) -> None:
    tab.goto(f"{relay.url}/")
    tab.select_option("#transport", transport)
    tab.evaluate("window.__a11y.said = []")  # the page's own load messages are not a reply's
    tab.focus("body")
    chat_by_keyboard(tab, "document.body.dataset.state === 'done'")
    assert_no_violations(tab)
    announced_once(tab)


def test_lesson_06_stop_by_keyboard(tab: Any, paced_relay: Server) -> None:
    tab.goto(f"{paced_relay.url}/")
    tab.fill("#message", "hello")
    tab.press("#message", "Enter")
    tab.wait_for_function("document.querySelector('.assistant')?.textContent.length > 0")
    tab.keyboard.press("Escape")  # from the message box: Escape stops the reply
    tab.wait_for_function("document.body.dataset.state === 'stopped'")
    assert tab.evaluate("document.activeElement.id") == "message"
    tab.fill("#message", "again")
    tab.press("#message", "Enter")
    tab.wait_for_function("document.querySelectorAll('.assistant').length === 2")
    for _ in range(6):  # Tab from the box reaches Stop, enabled while the reply streams
        tab.keyboard.press("Tab")
        if tab.evaluate("document.activeElement.id") == "stop":
            break
    assert tab.evaluate("document.activeElement.id") == "stop"
    tab.keyboard.press("Enter")
    tab.wait_for_function("document.body.dataset.state === 'stopped'")
    assert tab.evaluate("document.activeElement.id") == "message"  # not lost with Stop disabled
    assert tab.evaluate("window.__a11y.said") == ["Stopped.", "Stopped."]
    assert_no_violations(tab)


@pytest.mark.parametrize("transport", ["websocket", "sse"])
def test_lesson_10_chat(tab: Any, room: Server, transport: str) -> None:
    tab.goto(f"{room.url}/?transport={transport}")
    tab.wait_for_function("document.body.dataset.state === 'open'")
    tab.focus("body")
    chat_by_keyboard(tab, "document.querySelector('.assistant[data-done=yes]') !== null")
    assert_no_violations(tab)
    announced_once(tab)


@pytest.mark.nginx
@pytest.mark.redis
def test_lesson_11_capstone(tab: Any, capstone: Capstone) -> None:
    tab.goto(capstone.url)
    tab.wait_for_function("document.body.dataset.state === 'idle'")
    tab.evaluate("window.__a11y.said = []")
    tab.focus("body")
    chat_by_keyboard(tab, "document.body.dataset.state === 'done'")
    assert_no_violations(tab)
    announced_once(tab)


def test_mychat_index(tab: Any, mychat: Server) -> None:
    tab.goto(f"{mychat.url}/?start=3&interval=0.05")
    tab.wait_for_function("document.querySelector('#countdown').ariaBusy === 'false'")
    assert tab.evaluate("window.__a11y.said") == ["Countdown done."]
    assert_no_violations(tab)


def test_mychat_chat(tab: Any, mychat: Server) -> None:
    tab.goto(f"{mychat.url}/chat.html")
    tab.focus("body")
    chat_by_keyboard(
        tab,
        "document.querySelector('#reply').textContent.length > 0"
        " && document.querySelector('#reply').getAttribute('aria-busy') === 'false'",
    )
    seen = tab.evaluate("window.__a11y")
    assert seen["unbusy"] == [] and "true" in seen["busy"], seen
    assert tab.locator("#reply").get_attribute("aria-busy") == "false"
    assert_no_violations(tab)


def test_a_violation_fails(tab: Any) -> None:
    """The scan finds what the issue found: an input named only by its value, no <main>."""
    tab.set_content('<!doctype html><html><title>t</title><input id="m" value="hi"></html>')
    found = {v.rule: v.impact for v in scan_sync(tab)}
    assert found.get("label") == "critical" and "landmark-one-main" in found
    assert failing(scan_sync(tab), ALLOWED)
