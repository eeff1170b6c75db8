// The chat page of server/apps/ws_chat.py, over a WebSocket (?transport=websocket, the default)
// or over EventSource + POST (?transport=sse). Both show the same room messages; what differs
// is what the page has to do itself. URLs are relative, so the page works behind JupyterHub.
// Room text is untrusted: it goes on the page with textContent, never innerHTML.
"use strict";

const log = document.getElementById("log");
const form = document.getElementById("form");
const input = document.getElementById("message");
const sendButton = document.getElementById("send");
const statusLine = document.getElementById("status");
const announcer = document.getElementById("announce"); // role="status": read out when it changes
const transport = new URLSearchParams(location.search).get("transport") || "websocket";
const replies = new Map(); // reply name -> its paragraph
let lastId = ""; // the id of the last room message shown (streams broker), to resume from
let connections = 0; // tests read it from the page: how many times it (re)connected

function show(message) {
  if (message.id) lastId = message.id;
  if (message.type === "user") {
    const p = document.createElement("p");
    p.className = "user";
    p.textContent = message.text;
    const answer = document.createElement("p");
    answer.className = "assistant";
    answer.dataset.reply = message.reply;
    answer.setAttribute("aria-busy", "true"); // its tokens are not read out one by one
    log.append(p, answer);
    replies.set(message.reply, answer);
  } else if (message.type === "token") {
    const answer = replies.get(message.reply);
    if (answer) answer.textContent += message.text;
  } else if (message.type === "done") {
    const answer = replies.get(message.reply);
    if (answer) {
      answer.dataset.done = "yes";
      answer.setAttribute("aria-busy", "false");
      announcer.textContent = `Reply: ${answer.textContent}`; // the reply, said once
    }
  }
}

function opened() {
  connections += 1;
  document.body.dataset.connections = String(connections);
  document.body.dataset.state = "open";
  statusLine.textContent = `${transport}: open (connection ${connections})`;
  if (connections > 1) announcer.textContent = "Reconnected.";
  sendButton.disabled = false;
}

// Not `closed`: a function declared at the top of a classic script replaces window.closed.
function disconnected(why) {
  if (document.body.dataset.state === "open") {
    announcer.textContent = why.includes("reconnecting") ? "Connection lost, reconnecting." : "Connection closed.";
  }
  document.body.dataset.state = "closed";
  statusLine.textContent = `${transport}: ${why}`;
  sendButton.disabled = true;
}

// WebSocket: one connection both ways. Nothing reconnects it: this function does, after a
// second, sending the last id it saw in the URL (a browser WebSocket cannot set headers).
let socket = null;
function connectWebSocket() {
  const url = new URL("ws", location.href); // relative: works behind a proxy prefix
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (lastId) url.searchParams.set("last_id", lastId);
  socket = new WebSocket(url);
  socket.onopen = opened;
  socket.onmessage = (e) => show(JSON.parse(e.data));
  socket.onclose = (e) => {
    disconnected(`closed (${e.code}${e.reason ? ": " + e.reason : ""}), reconnecting…`);
    if (e.code !== 1008) setTimeout(connectWebSocket, 1000); // 1008: the server refused us
  };
}

// EventSource + POST: the stream reconnects by itself with Last-Event-ID; messages go up in a
// separate request.
function connectEventSource() {
  const source = new EventSource("events");
  source.onopen = opened;
  source.onmessage = (e) => show({ id: e.lastEventId, ...JSON.parse(e.data) });
  source.onerror = () => disconnected(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting…");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  const body = JSON.stringify({ text });
  if (transport === "sse") {
    const answer = await fetch("messages", { method: "POST", body, headers: { "Content-Type": "application/json" } });
    if (!answer.ok) statusLine.textContent = `POST /messages: ${answer.status}`;
  } else {
    socket.send(body);
  }
});

document.body.dataset.transport = transport;
if (transport === "sse") connectEventSource();
else connectWebSocket();
