// The chat view for server/apps/llm_relay.py. Text from the model is untrusted: it is always put on
// the page with textContent, never innerHTML, so a reply containing <script> stays text.
// URLs are relative ("chat", not "/chat") so the page also works behind JupyterHub's proxy.
"use strict";

const log = document.getElementById("log");
const form = document.getElementById("form");
const input = document.getElementById("message");
const transport = document.getElementById("transport");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const statusLine = document.getElementById("status");

const conversation = []; // what POST /chat sends: the whole conversation, every time
let stopCurrent = null; // closes the EventSource or aborts the fetch

fetch("config")
  .then((r) => r.json())
  .then((c) => { statusLine.textContent = `upstream: ${c.upstream}, model: ${c.model}`; })
  .catch(() => { statusLine.textContent = "the relay did not answer /config"; });

function line(cls, text) {
  const p = document.createElement("p");
  p.className = cls;
  p.textContent = text;
  log.append(p);
  return p;
}

function setState(state) {
  document.body.dataset.state = state; // "streaming", "done", "error", "stopped" (tests read it)
  const busy = state === "streaming";
  sendButton.disabled = busy;
  stopButton.disabled = !busy;
}

// Both transports call these with the relay's events.
function handlers(bubble, userText) {
  let reply = "";
  return {
    delta(data) { reply += data.delta; bubble.textContent = reply; },
    done() {
      conversation.push({ role: "user", content: userText }, { role: "assistant", content: reply });
      setState("done");
    },
    error(data) { line("error", `⚠ ${data.message}`); setState("error"); },
  };
}

// EventSource: GET only, one message in the URL, and it reconnects by itself when the stream
// ends. A reconnect would ask (and pay) the model again, so close it on done and on error.
function viaEventSource(userText, on) {
  const source = new EventSource(`chat?message=${encodeURIComponent(userText)}`);
  source.onmessage = (e) => on.delta(JSON.parse(e.data));
  source.addEventListener("done", () => { source.close(); on.done(); });
  source.addEventListener("error", (e) => {
    source.close();
    // An "error" event from the server has data; a failed connection fires one without.
    on.error(e.data ? JSON.parse(e.data) : { message: "the connection to the relay failed" });
  });
  return () => source.close();
}

// fetch + POST: the whole conversation in the body, the SSE stream read with sse.js (a parser
// by lesson 03's rules, served next to this script).
function viaFetch(userText, on) {
  const controller = new AbortController();
  const messages = [...conversation, { role: "user", content: userText }];
  (async () => {
    const { readEvents } = await import("./sse.js"); // relative to this script's URL
    const response = await fetch("chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(`the relay answered ${response.status}`);
    for await (const event of readEvents(response)) {
      const payload = JSON.parse(event.data);
      if (event.type === "message") on.delta(payload);
      else if (event.type === "done") on.done(payload);
      else if (event.type === "error") on.error(payload);
    }
  })().catch((err) => {
    if (err.name !== "AbortError") on.error({ message: String(err.message || err) });
  });
  return () => controller.abort();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const userText = input.value.trim();
  if (!userText) return;
  input.value = "";
  line("user", userText);
  const on = handlers(line("assistant", ""), userText);
  setState("streaming");
  const start = transport.value === "eventsource" ? viaEventSource : viaFetch;
  stopCurrent = start(userText, on);
});

// Stopping closes the connection; the relay sees it and cancels the upstream generation.
stopButton.addEventListener("click", () => {
  if (stopCurrent) stopCurrent();
  stopCurrent = null;
  line("error", "(stopped)");
  setState("stopped");
});
