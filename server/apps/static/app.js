// Lesson 05's page: EventSource (GET, automatic reconnection) and fetch + ReadableStream (POST).
//
// Every piece of streamed text goes into the page with textContent, never innerHTML: a message
// is data, and data that contains "<img onerror=...>" must show up as those characters.
//
// Everything the page observes is also kept in `window.course.seen`, so a test (or the
// notebook, through Playwright) can assert on it instead of scraping the panels.
"use strict";

const STATES = ["CONNECTING", "OPEN", "CLOSED"];
const SHOWN = 30; // list items kept on screen (the full record is in `seen`)

const $ = (id) => document.getElementById(id);

const seen = {
  messages: [], // {id, data} of every `message` event
  named: [], // {type, id, data} of every named event
  opens: 0, // `open` events: the first connection, then one per reconnection
  errors: 0, // `error` events: a lost connection, a refused one, or the end of the stream
  states: [], // readyState changes, in order
  lastEventId: "", // of the last event received, named or not
  pageRetries: 0, // new EventSources opened by connectWithRetry() after one was CLOSED
  gaveUp: false, // connectWithRetry() stopped after too many attempts in a row
  chat: { text: "", tokens: 0, done: false, status: null },
  many: [], // readyStates of the sources opened by openMany()
  manyMessages: [], // and how many messages each one received
};
let source = null;
let retryTimer = null;
let manySources = [];

function addItem(list, text) {
  const item = document.createElement("li");
  item.textContent = text; // never innerHTML: the text is shown, not parsed
  list.append(item);
  while (list.children.length > SHOWN) list.firstElementChild.remove();
  list.scrollTop = list.scrollHeight;
}

function render() {
  const state = source ? source.readyState : null;
  if (state !== null && seen.states.at(-1) !== STATES[state]) seen.states.push(STATES[state]);
  $("state").textContent = state === null ? "–" : `${state} ${STATES[state]}`;
  $("state").className = state === null ? "" : `state-${state}`;
  $("opens").textContent = seen.opens;
  $("reconnections").textContent = Math.max(0, seen.opens - 1);
  $("errors").textContent = seen.errors;
  $("page-retries").textContent = seen.gaveUp ? `${seen.pageRetries}, gave up` : seen.pageRetries;
  const last = seen.messages.concat(seen.named).map((m) => Number(m.id)).sort((a, b) => a - b);
  $("last-id").textContent = last.length ? last.at(-1) : "–";
  seen.many = manySources.map((s) => s.readyState);
}

function connect(url, options = {}) {
  closeStream();
  return listen(url, options);
}

// A new EventSource in place of the current one (if any), with the page's listeners.
function listen(url, options = {}) {
  if (source) source.close();
  source = new EventSource(url, options); // GET only, no custom headers: that is the API
  source.onopen = () => {
    seen.opens += 1;
    render();
  };
  source.onmessage = (event) => {
    seen.lastEventId = event.lastEventId;
    seen.messages.push({ id: event.lastEventId, data: event.data });
    addItem($("messages"), `#${event.lastEventId} ${event.data}`);
    render();
  };
  // A named event (`event: milestone`) does NOT reach onmessage: it needs its own listener.
  source.addEventListener("milestone", (event) => {
    seen.lastEventId = event.lastEventId;
    seen.named.push({ type: event.type, id: event.lastEventId, data: event.data });
    addItem($("named"), `#${event.lastEventId} ${event.data}`);
    render();
  });
  // Fired on every lost connection. readyState says what happens next: CONNECTING means the
  // browser will retry by itself (after `retry` ms), CLOSED means it gave up for good.
  source.onerror = () => {
    seen.errors += 1;
    render();
  };
  render();
  return source;
}

// EventSource reconnects by itself only after a lost connection. Any answer other than a 200
// with text/event-stream (a proxy's 502 during a deploy, a 503, a 401) closes it for good:
// readyState CLOSED, no more retries. A page that must stay live opens a new EventSource
// itself, later and later (exponential backoff with jitter, so that a thousand pages do not
// all come back in the same second), and gives up after `maxAttempts` in a row that never
// opened. A new EventSource cannot set the Last-Event-ID header, so the id it had reached goes
// in the URL (`?lastEventId=`). The page cannot tell why it was closed: a 204 ("done") looks
// exactly like a 502, so a stream a page reopens must say that it is done in an event.
function connectWithRetry(url, { firstDelay = 1000, maxDelay = 30000, maxAttempts = 10 } = {}) {
  let delay = firstDelay;
  let failures = 0; // attempts in a row that never opened
  const open = () => {
    retryTimer = null;
    const target = seen.lastEventId ? withParam(url, "lastEventId", seen.lastEventId) : url;
    const current = listen(target);
    current.addEventListener("open", () => {
      delay = firstDelay;
      failures = 0;
    });
    current.addEventListener("error", () => {
      if (current !== source || current.readyState !== EventSource.CLOSED) return;
      failures += 1;
      if (failures >= maxAttempts) {
        seen.gaveUp = true;
        render();
        return;
      }
      seen.pageRetries += 1;
      retryTimer = setTimeout(open, delay * (0.5 + Math.random() / 2));
      delay = Math.min(delay * 2, maxDelay);
    });
  };
  closeStream();
  open();
  return source;
}

function withParam(url, name, value) {
  const absolute = new URL(url, location.href); // relative to the page, as EventSource does
  absolute.searchParams.set(name, value);
  return absolute.href;
}

// Not `close`: a function declared at the top of a classic script replaces window.close.
function closeStream() {
  clearTimeout(retryTimer);
  retryTimer = null;
  if (source) source.close();
  render();
}

function clear() {
  closeStream();
  source = null;
  Object.assign(seen, {
    messages: [],
    named: [],
    opens: 0,
    errors: 0,
    states: [],
    lastEventId: "",
    pageRetries: 0,
    gaveUp: false,
  });
  $("messages").replaceChildren();
  $("named").replaceChildren();
  render();
}

// Open `n` EventSources to one URL at once: over HTTP/1.1 a browser keeps at most six
// connections per host, so the seventh stays CONNECTING until another one closes.
function openMany(n, url) {
  closeMany();
  manySources = Array.from({ length: n }, () => new EventSource(url));
  seen.manyMessages = manySources.map(() => 0);
  manySources.forEach((s, i) => {
    s.onopen = render;
    s.onmessage = () => {
      seen.manyMessages[i] += 1;
    };
  });
  render();
}

function closeMany(count = manySources.length) {
  for (const s of manySources.slice(0, count)) s.close();
  render();
}

// Open one EventSource of its own (the page's panels are not involved) and report how far it
// got: "received" after two messages, "failed, CLOSED" if the browser closed it (a CORS
// refusal closes it for good), or "timed out". Lesson 05 tries cross-origin streams with it.
function tryStream(url, withCredentials = false, timeout = 5000) {
  return new Promise((resolve) => {
    const probe = new EventSource(url, { withCredentials });
    let messages = 0;
    const done = (outcome) => {
      probe.close();
      resolve({ messages, outcome });
    };
    probe.onmessage = () => {
      messages += 1;
      if (messages === 2) done("received");
    };
    probe.onerror = () => {
      if (probe.readyState === EventSource.CLOSED) done("failed, CLOSED");
    };
    setTimeout(() => done("timed out"), timeout);
  });
}

// SSE over POST, as LLM chat UIs do it: EventSource cannot send a body, fetch can. The
// price: no automatic reconnection, no Last-Event-ID, and a parser of our own (sse.js, which
// follows lesson 03's rules, down to a CRLF cut between two reads).
async function chat(message) {
  const { readEvents } = await import("./sse.js"); // relative to this script: static/sse.js
  const out = $("reply");
  out.textContent = "";
  Object.assign(seen.chat, { text: "", tokens: 0, done: false, status: null });
  $("chat-status").textContent = "streaming…";
  const response = await fetch("chat", {
    method: "POST",
    // Exactly this Accept: jupyter-server-proxy (JupyterHub) streams a response as it comes
    // only for requests that ask for text/event-stream; any other it buffers whole.
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ message }),
  });
  seen.chat.status = response.status;
  for await (const event of readEvents(response)) {
    if (event.data === "[DONE]") {
      seen.chat.done = true;
      continue;
    }
    const token = JSON.parse(event.data).token;
    out.textContent += token; // text, never markup
    seen.chat.text += token;
    seen.chat.tokens += 1;
  }
  $("chat-status").textContent = seen.chat.done ? `done: ${seen.chat.tokens} tokens` : "cut off";
  return seen.chat;
}

$("es-form").addEventListener("submit", (event) => {
  event.preventDefault();
  clear();
  if ($("reopen").checked) connectWithRetry($("url").value);
  else connect($("url").value);
});
$("close").addEventListener("click", closeStream);
$("chat-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  // aria-busy while the reply streams: a screen reader is not made to read it token by token;
  // #chat-status (role="status") says once how it ended.
  $("reply").setAttribute("aria-busy", "true");
  try {
    await chat($("message").value);
  } finally {
    $("reply").setAttribute("aria-busy", "false");
  }
});
setInterval(render, 100); // readyState changes without an event (e.g. CONNECTING after error)

window.course = {
  seen,
  connect,
  connectWithRetry,
  close: closeStream,
  clear,
  chat,
  openMany,
  closeMany,
  tryStream,
};

// `?src=events%3Flimit%3D5` connects at load, so a link or an IFrame shows a live stream;
// `&reopen=1` with the page-level retry.
const query = new URLSearchParams(location.search);
const initial = query.get("src");
if (initial) {
  $("url").value = initial;
  $("reopen").checked = query.get("reopen") === "1";
  if ($("reopen").checked) connectWithRetry(initial);
  else connect(initial);
}
