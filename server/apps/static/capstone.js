// The capstone's chat page (server/apps/capstone). A message is a fetch POST; its reply is read
// from api/replies/<id>/events with sse.js, and read again from the last event id whenever the
// stream breaks (a worker killed, a deploy), so no token is lost or shown twice. Text from the
// model is untrusted: always textContent, never innerHTML. URLs are relative ("api/chat", not
// "/api/chat") so the page also works behind JupyterHub's proxy.
"use strict";

const log = document.getElementById("log");
const form = document.getElementById("form");
const input = document.getElementById("message");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const newButton = document.getElementById("new");
const statusLine = document.getElementById("status");
const announcer = document.getElementById("announce"); // role="status": read out when it changes
const STORE = "capstone.conversation"; // the conversation id survives a reload
const MAX_RECONNECTS = 30;

let current = null; // the reply streaming now: { reply, controller, stopped }

function line(cls, text) {
  const p = document.createElement("p");
  p.className = cls;
  p.textContent = text;
  log.append(p);
  return p;
}

function setState(state) {
  // loading, idle, streaming, done, error, stopped, refused (tests read it)
  document.body.dataset.state = state;
  const busy = state === "streaming";
  // A focused button that becomes disabled drops focus to <body>: put it back in the box.
  if (document.activeElement === (busy ? sendButton : stopButton)) input.focus();
  sendButton.disabled = busy;
  stopButton.disabled = !busy;
}

// A screen reader hears a reply once: its bubble is aria-busy while tokens arrive, and this
// status region says the reply, or how it ended, when it has ended.
function announce(text) {
  announcer.textContent = text;
}

// An error line, also said once.
function failed(text) {
  line("error", text);
  announce(text);
}

// An API refusal is JSON {"detail": "..."}: show the sentence, whatever the status.
async function refusal(response) {
  try {
    const body = await response.json();
    if (body && body.detail) return `⚠ ${body.detail} (${response.status})`;
  } catch (err) {
    // not JSON: a proxy's page; the status is all we have
  }
  return `⚠ The server answered ${response.status}.`;
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
  const { readEvents } = await import("./sse.js");
  const controller = new AbortController();
  current = { reply, controller, stopped: false };
  setState("streaming");
  let text = "";
  let next = 0;
  let lastEventId = "";
  let retryMs = 1000;
  for (let attempt = 0; attempt <= MAX_RECONNECTS; attempt++) {
    if (attempt > 0) {
      document.body.dataset.reconnects = String(attempt);
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
    if (current.stopped) return;
    let response;
    try {
      const headers = { Accept: "text/event-stream" };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      response = await fetch(`api/replies/${reply}/events`, {
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
    try {
      for await (const event of readEvents(response)) {
        lastEventId = event.lastEventId;
        const data = JSON.parse(event.data);
        if (event.type === "owner") {
          statusLine.textContent = data.takeover
            ? `worker ${data.worker} took the reply over`
            : `generating on worker ${data.worker}`;
        } else if (event.type === "message") {
          if (data.i < next) continue; // already shown
          if (data.i > next) throw new Error(`token ${next} is missing`);
          text += data.delta;
          next += 1;
          bubble.textContent = text;
        } else {
          if (event.type !== "done") failed(`⚠ ${data.message}`);
          else announce(`Reply: ${text}`);
          setState(event.type);
          return;
        }
      }
    } catch (err) {
      if (err.name === "AbortError") return;
      if (String(err.message).includes("missing")) {
        failed(`⚠ ${err.message}`);
        setState("error");
        return;
      }
    }
    // the stream ended without its last event: reconnect from lastEventId
    if (attempt === 0) announce("The reply's stream broke; resuming it.");
  }
  failed("⚠ The reply stream kept breaking; reload the page to try again.");
  setState("error");
}

async function send(message) {
  const conversation = localStorage.getItem(STORE);
  let response;
  try {
    response = await fetch("api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
      body: JSON.stringify({ message, conversation }),
    });
  } catch (err) {
    failed(`⚠ Could not reach the server: ${err.message}`);
    setState("refused");
    return;
  }
  if (!response.ok) {
    failed(await refusal(response));
    setState("refused");
    return;
  }
  const accepted = await response.json();
  localStorage.setItem(STORE, accepted.conversation);
  document.body.dataset.reply = accepted.reply; // for tests and the lesson: which reply, and
  document.body.dataset.seed = String(accepted.seed); // the seed the model was asked with
  await showReply(accepted.reply, line("assistant", ""));
}

// On load: the conversation's history, and the reply still generating, if any, read again
// from its start into a fresh bubble.
async function restore() {
  const conversation = localStorage.getItem(STORE);
  if (!conversation) {
    statusLine.textContent = "new conversation";
    setState("idle");
    return;
  }
  const response = await fetch(`api/conversations/${conversation}`);
  if (!response.ok) {
    line("error", await refusal(response));
    setState("idle");
    return;
  }
  const { messages, pending } = await response.json();
  for (const message of messages) {
    line(message.role, message.content);
    if (message.status && message.status !== "done") line("note", `(${message.status})`);
  }
  statusLine.textContent = `restored ${messages.length} messages`;
  if (pending) await showReply(pending, line("assistant", ""));
  else setState("idle");
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const message = input.value.trim();
  if (!message) return;
  input.value = "";
  line("user", message);
  setState("streaming");
  send(message);
});

// Stop asks the server to end the reply (which stops the model, on whichever worker runs it),
// then closes this page's stream. Reachable by Tab while a reply streams; Escape does the same.
stopButton.addEventListener("click", stop);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.body.dataset.state === "streaming") stop();
});

async function stop() {
  if (!current || current.stopped) return;
  const { reply, controller } = current;
  current.stopped = true;
  const response = await fetch(`api/replies/${reply}/stop`, { method: "POST" });
  controller.abort();
  if (!response.ok && response.status !== 409) line("error", await refusal(response));
  line("note", "(stopped)");
  announce("Stopped.");
  setState("stopped");
}

newButton.addEventListener("click", () => {
  localStorage.removeItem(STORE);
  log.replaceChildren();
  statusLine.textContent = "new conversation";
  setState("idle");
});

restore();
