// The capstone's chat page (server/apps/capstone; a module: capstone.html loads it with
// type="module"). A message is a fetch POST; its reply is read from api/replies/<id>/events
// with sse.js, and read again from the last event id whenever the stream breaks (a worker
// killed, a deploy), so no token is lost or shown twice. Text from the model is untrusted:
// always textContent, never innerHTML. URLs are relative ("api/chat", not "/api/chat") so the
// page also works behind JupyterHub's proxy.
//
// Every request can fail, and the page stays usable whichever does: it says what failed and
// goes back to a state where Send (or Stop) works.
import { chatView, stopOnEscape } from "./chat_view.js";

// setState: loading, idle, streaming, done, error, stopped, refused (tests read it)
const { log, form, input, statusLine, stopButton, line, announce, failed, setState } = chatView();
const newButton = document.getElementById("new");
const STORE = "capstone.conversation"; // the conversation id survives a reload
const MAX_RECONNECTS = 30;
const SEND_ATTEMPTS = 4; // a chat POST whose answer was lost, sent again with the same key

const PAGE = newKey(); // this page load, on its reads of a reply and on its `leave` beacon
let current = null; // the reply streaming now: { reply, controller, stopped }

// The stream is well formed but is not a reply this page can show: saying so once is all
// there is to do (reading it again would get the same events).
class BrokenReply extends Error {}

// An API refusal is JSON {"detail": "..."}: show the sentence, whatever the status.
async function refusal(response) {
  try {
    const body = await response.json();
    if (body && body.detail) return `⚠ ${body.detail} (${response.status})`;
  } catch {
    // not JSON: a proxy's page; the status is all we have
  }
  return `⚠ The server answered ${response.status}.`;
}

// How long to wait before trying again after `failures` failed tries in a row: the server's
// `retry:` (its reconnection time; 1 s until it says), doubled for each failed try (up to 32
// times), times a random factor from 0.5 to 1.5. Without that factor every page a dead
// worker dropped would come back in the same instant, and again together at each retry.
function backoff(retryMs, failures) {
  const base = retryMs * 2 ** Math.min(failures, 5);
  return Math.round(base * (0.5 + Math.random()));
}

function wait(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// An Idempotency-Key: a random (version 4) UUID. `crypto.randomUUID` exists only in a secure
// context (HTTPS, or localhost); a page on plain HTTP from another host (a lab machine's
// address) has only `crypto.getRandomValues`, so the same UUID is made from 16 random bytes.
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // the version, 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // the variant, RFC 9562's
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)]
    .join("-");
}

// An event's data as JSON; anything else is a reply the page cannot show.
function dataOf(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    const id = event.lastEventId || "none";
    throw new BrokenReply(`The server sent a malformed "${event.type}" event (id ${id}).`);
  }
}

// A reply's bubble is aria-busy while its tokens arrive: a screen reader waits for the whole
// reply, which `announce` then says once.
async function showReply(reply, bubble) {
  bubble.setAttribute("aria-busy", "true");
  try {
    await readReply(reply, bubble);
  } finally {
    bubble.setAttribute("aria-busy", "false");
  }
}

// Read one reply to its last event. Each token carries its index `i`: one already shown is
// skipped, and a gap is an error, so what the page shows is exactly the reply.
async function readReply(reply, bubble) {
  const { EventStreamParser, readEvents } = await import("./sse.js");
  const controller = new AbortController();
  const reading = { reply, controller, stopped: false };
  current = reading;
  setState("streaming");
  let text = "";
  let next = 0;
  let lastEventId = "";
  let retryMs = 1000;
  let failures = 0; // tries in a row that brought no event
  for (let attempt = 0; attempt <= MAX_RECONNECTS; attempt++) {
    if (attempt > 0) {
      document.body.dataset.reconnects = String(attempt);
      await wait(backoff(retryMs, failures));
    }
    if (reading.stopped) return;
    failures += 1; // until an event arrives
    let response;
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      response = await fetch(`api/replies/${reply}/events?page=${PAGE}`, {
        headers,
        signal: controller.signal,
      });
    } catch (err) {
      if (err.name === "AbortError") return;
      continue; // the connection failed: try again
    }
    if (response.status >= 500) continue; // a proxy with no worker for a moment
    if (!response.ok) {
      failed(await refusal(response));
      setState("error");
      return;
    }
    const parser = new EventStreamParser(); // its `retry` is the server's reconnection time
    try {
      for await (const event of readEvents(response, parser)) {
        lastEventId = event.lastEventId;
        failures = 0;
        const data = dataOf(event);
        if (event.type === "owner") {
          statusLine.textContent = data.takeover
            ? `worker ${data.worker} took the reply over`
            : `generating on worker ${data.worker}`;
        } else if (event.type === "message") {
          if (data.i < next) continue; // already shown
          if (data.i > next) throw new BrokenReply(`token ${next} is missing`);
          text += data.delta;
          next += 1;
          bubble.textContent = text;
        } else {
          // done, stopped, or error: the server's `error` is a reply that failed. Read with
          // fetch it collides with nothing; an EventSource would fire it at the same
          // listener as its own connection errors, told apart by its data (see chat.js).
          if (event.type !== "done") failed(`⚠ ${data.message}`);
          else announce(`Reply: ${text}`);
          setState(event.type);
          return;
        }
      }
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err instanceof BrokenReply) {
        failed(`⚠ ${err.message}`);
        setState("error");
        return;
      }
      // anything else is the connection breaking mid-stream
    }
    if (parser.retry !== null) retryMs = parser.retry;
    // the stream ended without its last event: reconnect from lastEventId
    if (attempt === 0) announce("The reply's stream broke; resuming it.");
  }
  failed("⚠ The reply stream kept breaking; reload the page to try again.");
  setState("error");
}

// A POST whose answer never came (the connection failed, or a proxy answered 502, 503 or 504
// while a worker died) is sent again with the same Idempotency-Key: if the server had taken
// it, it answers with the reply it started (a 200) instead of starting a second one.
async function post(message, conversation) {
  const key = newKey();
  let outcome = null;
  for (let attempt = 1; attempt <= SEND_ATTEMPTS; attempt++) {
    if (attempt > 1) await wait(backoff(1000, attempt - 2));
    try {
      outcome = await fetch("api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify({ message, conversation }),
      });
    } catch (err) {
      outcome = err;
      continue;
    }
    if (![502, 503, 504].includes(outcome.status)) break;
  }
  return outcome; // a Response, or the last connection error
}

async function send(message) {
  const outcome = await post(message, localStorage.getItem(STORE));
  if (outcome instanceof Error) {
    failed(`⚠ Could not reach the server: ${outcome.message}`);
    setState("refused");
    return;
  }
  if (!outcome.ok) {
    failed(await refusal(outcome));
    setState("refused");
    return;
  }
  let accepted;
  try {
    accepted = await outcome.json();
  } catch {
    failed(`⚠ The server's answer (${outcome.status}) was not the chat's JSON.`);
    setState("refused");
    return;
  }
  localStorage.setItem(STORE, accepted.conversation);
  document.body.dataset.reply = accepted.reply; // for tests and the lesson: which reply, and
  document.body.dataset.seed = String(accepted.seed); // the seed the model was asked with
  await showReply(accepted.reply, line("assistant", ""));
}

// On load: the conversation's history, and the reply still generating, if any, read again
// from its start into a fresh bubble. A history that does not load is said, and the page
// goes on without it.
async function restore() {
  const conversation = localStorage.getItem(STORE);
  if (!conversation) {
    statusLine.textContent = "new conversation";
    setState("idle");
    return;
  }
  let found;
  try {
    const response = await fetch(`api/conversations/${conversation}`);
    if (!response.ok) {
      failed(await refusal(response));
      setState("idle");
      return;
    }
    found = await response.json();
    if (!Array.isArray(found.messages)) throw new Error("no messages in the answer");
  } catch (err) {
    failed(`⚠ The conversation's history did not load (${err.message}).`);
    statusLine.textContent = "history not loaded";
    setState("idle");
    return;
  }
  for (const message of found.messages) {
    line(message.role, message.content);
    if (message.status && message.status !== "done") line("note", `(${message.status})`);
  }
  statusLine.textContent = `restored ${found.messages.length} messages`;
  if (found.pending) await showReply(found.pending, line("assistant", ""));
  else setState("idle");
}

// The last resort: a failure nothing above expected is said, and Send works again.
function guarded(task) {
  task.catch((err) => {
    failed(`⚠ Something failed on this page: ${err.message}`);
    setState("error");
  });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const message = input.value.trim();
  if (!message) return;
  input.value = "";
  line("user", message);
  setState("streaming");
  guarded(send(message));
});

// Stop asks the server to end the reply (which stops the model, on whichever worker runs it),
// then closes this page's stream. If that request fails the reply goes on: the page says so
// and keeps showing it, and Stop works again. Reachable by Tab while a reply streams; Escape
// does the same.
stopButton.addEventListener("click", () => guarded(stop()));
stopOnEscape(() => guarded(stop()));

async function stop() {
  const reading = current;
  if (!reading || reading.stopped) return;
  reading.stopped = true;
  let response = null;
  try {
    response = await fetch(`api/replies/${reading.reply}/stop`, { method: "POST" });
  } catch {
    // no answer: response stays null
  }
  if (response === null || response.status >= 500) {
    reading.stopped = false;
    const why = response === null ? "the server did not answer" : `it answered ${response.status}`;
    failed(`⚠ Could not stop the reply (${why}); it goes on. Press Stop to try again.`);
    return;
  }
  reading.controller.abort();
  if (document.body.dataset.state !== "streaming") return; // it ended while we asked
  if (!response.ok && response.status !== 409) failed(await refusal(response));
  line("note", "(stopped)");
  announce("Stopped.");
  setState("stopped");
}

// A page closed (or reloaded) mid-reply says so with a beacon, which the browser still sends
// as the page goes away. Behind jupyter-server-proxy the server never learns that a tab
// closed, so the model would go on generating for nobody; the server stops the reply unless
// another page reads it within a few seconds, as this one reloaded does (api.py's `leave`).
addEventListener("pagehide", () => {
  if (current && !current.stopped && document.body.dataset.state === "streaming") {
    navigator.sendBeacon(`api/replies/${current.reply}/leave?page=${PAGE}`);
  }
});

newButton.addEventListener("click", () => {
  localStorage.removeItem(STORE);
  log.replaceChildren();
  statusLine.textContent = "new conversation";
  setState("idle");
});

guarded(restore());
