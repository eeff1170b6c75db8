// Stage 4 (lesson 06): the chat page. It POSTs the message with fetch and reads the reply, a
// stream of Server-Sent Events, from the response body as it arrives.
// URLs are relative ("chat", not "/chat"): behind JupyterHub the page lives under a prefix.

// BEGIN STAGE 4
const form = document.getElementById("ask");
const input = document.getElementById("message");
const reply = document.getElementById("reply");

// One event from the text between two blank lines: its type and data, or null for a comment
// (a ping). The relay ends its lines with "\n" only; lesson 05's sse.js also takes "\r\n", "\r".
function parseEvent(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    else if (line.startsWith("event:")) type = line.slice(6).trim();
  }
  return data.length ? { type, data: data.join("\n") } : null;
}

async function ask(message) {
  reply.textContent = "";
  reply.setAttribute("aria-busy", "true"); // screen readers announce the reply once, at the end
  try {
    const response = await fetch("chat", {
      method: "POST",
      // Accept: text/event-stream makes JupyterHub's proxy stream the answer, not hold it
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ message }),
    });
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    // TextDecoderStream keeps a UTF-8 character cut between two reads for the next read.
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the reply was cut off");
      const blocks = (buffer + value).split("\n\n");
      buffer = blocks.pop(); // the unfinished event waits for the next read
      for (const event of blocks.map(parseEvent)) {
        if (event?.type === "message") reply.textContent += JSON.parse(event.data).delta;
        if (event?.type === "error") throw new Error(JSON.parse(event.data).message);
        if (event?.type === "done") return;
      }
    }
  } catch (error) {
    reply.textContent += ` ⚠ ${error.message}`;
  } finally {
    reply.setAttribute("aria-busy", "false");
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault(); // Enter in the input, or the Send button
  ask(input.value);
});
// END STAGE 4
