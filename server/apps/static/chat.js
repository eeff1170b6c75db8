// The chat view for server/apps/llm_relay (a module: chat.html loads it with type="module").
// Text from the model is untrusted: it reaches the page only through textContent and
// createElement (markdown.js), never innerHTML, so a reply containing <script> stays text.
// URLs are relative ("chat", not "/chat") so the page also works behind JupyterHub's proxy.
import { chatView, stopOnEscape } from "./chat_view.js";
import { renderMarkdown } from "./markdown.js";
import { readEvents } from "./sse.js"; // a parser by lesson 03's rules, served next to this script

// setState: "streaming", then one of "done", "error", "cut-off", "stopped" (tests read it)
const { form, input, statusLine, stopButton, line, announce, setState } = chatView();
const transport = document.getElementById("transport");

const conversation = []; // what POST /chat sends: the whole conversation, every time
let current = null; // the reply streaming now: { stop, on }

fetch("config")
  .then((r) => r.json())
  .then((c) => { statusLine.textContent = `upstream: ${c.upstream}, model: ${c.model}`; })
  .catch(() => { statusLine.textContent = "the relay did not answer /config"; });

// Both transports call these with the relay's events. A reply ends once, whichever way comes
// first; anything after that (a late event, the body's end after Stop) changes nothing.
function handlers(bubble, userText) {
  let reply = "";
  let ended = false;
  bubble.setAttribute("aria-busy", "true");
  function end(state, message, said) {
    if (ended) return;
    ended = true;
    if (message) line("error", message);
    bubble.setAttribute("aria-busy", "false");
    announce(said ?? message);
    setState(state);
  }
  return {
    delta(data) {
      if (ended) return;
      reply += data.delta;
      bubble.replaceChildren(renderMarkdown(reply)); // the whole text again: see markdown.js
    },
    done() {
      if (ended) return;
      conversation.push({ role: "user", content: userText }, { role: "assistant", content: reply });
      end("done", "", `Reply: ${reply}`);
    },
    error(data) { end("error", `⚠ ${data.message}`); },
    // The stream ended without `done` or `error`: a proxy or the network cut it. Keep the text
    // that came, say it is incomplete (and leave it out of the conversation).
    cutOff() { end("cut-off", "⚠ The reply was cut off: the stream ended without done or error."); },
    stopped() { end("stopped", "(stopped)", "Stopped."); },
  };
}

// EventSource: GET only, one message in the URL, and it reconnects by itself when the stream
// ends. A reconnect would ask (and pay) the model again, so close it on done and on error.
function viaEventSource(userText, on) {
  const source = new EventSource(`chat?message=${encodeURIComponent(userText)}`);
  let opened = false;
  source.onopen = () => { opened = true; };
  source.onmessage = (e) => on.delta(JSON.parse(e.data));
  source.addEventListener("done", () => { source.close(); on.done(); });
  source.addEventListener("error", (e) => {
    source.close();
    // An "error" event from the server has data. One without data is the browser's: the
    // stream ended (cut off, if it had opened) or the connection failed.
    if (e.data) on.error(JSON.parse(e.data));
    else if (opened) on.cutOff();
    else on.error({ message: "the connection to the relay failed" });
  });
  return () => source.close();
}

// fetch + POST: the whole conversation in the body, the SSE stream read with sse.js's
// readEvents. Accept: text/event-stream is what makes JupyterHub's proxy stream the answer.
function viaFetch(userText, on) {
  const controller = new AbortController();
  const messages = [...conversation, { role: "user", content: userText }];
  (async () => {
    const response = await fetch("chat", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
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
    on.cutOff(); // the body ended: after done or error this changes nothing
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
  const on = handlers(line("assistant", "", "div"), userText);
  setState("streaming");
  const start = transport.value === "eventsource" ? viaEventSource : viaFetch;
  current = { stop: start(userText, on), on };
});

// Stopping closes the connection; the relay sees it and cancels the upstream generation.
// Stop is reachable by Tab while a reply streams; Escape anywhere on the page does the same.
function stop() {
  if (!current) return;
  current.stop();
  current.on.stopped();
  current = null;
}
stopButton.addEventListener("click", stop);
stopOnEscape(stop);
