"""What a real browser's `EventSource` does behind a proxy, driven from Python (Playwright).

Two scenes lesson 08 plays in headless Chromium, each one `page.evaluate` of a small script
that resolves once the scene has happened (never after a fixed wait):

- `timeout_race`: two streams on one page, one quiet and one with heartbeats; it notes every
  `open`, event and `error` with the milliseconds since the start, and ends once the quiet
  stream was cut twice and the heartbeat one got its second event;
- `open_sources`: `n` streams on one page; it counts each one's events and ends once six of
  them have five events each (by then the others have had every chance to open, if the
  browser let them), with the protocol the page was loaded over (`h2`, `http/1.1`).

The page must come from the proxy's origin, so that the streams' relative URLs go through it.
The functions take Playwright's async `Page` (a notebook cell runs inside an event loop).
"""

from __future__ import annotations

from typing import Any

TIMEOUT_RACE = """({quiet, heartbeat}) => new Promise((done) => {
    const log = {quiet: [], heartbeat: []}, sources = [], t0 = performance.now();
    const count = (name, what) => log[name].filter(([seen]) => seen === what).length;
    for (const [name, url] of Object.entries({quiet, heartbeat})) {
        const source = new EventSource(url);
        sources.push(source);
        const note = (what) => {
            log[name].push([what, Math.round(performance.now() - t0)]);
            if (count("quiet", "error") >= 2 && count("heartbeat", "event 2") === 1) {
                sources.forEach((each) => each.close());
                done(log);
            }
        };
        source.onopen = () => note("open");
        source.onmessage = (event) => note(`event ${event.lastEventId}`);
        source.onerror = () => note("error");
    }
})"""

OPEN_SOURCES = """(n) => new Promise((done) => {
    const counts = new Array(n).fill(0), sources = [];
    for (let i = 0; i < n; i++) {
        const source = new EventSource(`/events?interval=0.1&limit=50&source=${i}`);
        sources.push(source);
        source.onmessage = () => {
            counts[i] += 1;
            if (counts.filter((c) => c >= 5).length === 6) {
                sources.forEach((each) => each.close());
                const protocol = performance.getEntriesByType("navigation")[0].nextHopProtocol;
                done({counts, protocol});
            }
        };
    }
})"""


async def timeout_race(page: Any, quiet: str, heartbeat: str) -> dict[str, list[tuple[str, int]]]:
    """{"quiet": [(what, ms), ...], "heartbeat": [...]}: each stream's open/event/error log."""
    log = await page.evaluate(TIMEOUT_RACE, {"quiet": quiet, "heartbeat": heartbeat})
    return {name: [(what, ms) for what, ms in notes] for name, notes in log.items()}


async def open_sources(page: Any, n: int = 10) -> tuple[str, list[int]]:
    """(the page's protocol, events per stream) for `n` `EventSource`s on one page."""
    result = await page.evaluate(OPEN_SOURCES, n)
    return result["protocol"], list(result["counts"])
