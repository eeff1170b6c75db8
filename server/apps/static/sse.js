// An incremental text/event-stream parser for pages that read SSE with fetch (EventSource has
// its own). The same rules as server/sse.py's Decoder (lesson 03), in JavaScript:
//
// - LF, CRLF and CR all end a line. A read can end between the CR and the LF of a CRLF: the CR
//   ends the line at once, and an LF at the start of the next read is the rest of that CRLF,
//   not an empty line (read as one, it would dispatch the event too early).
// - A line starting with ":" is a comment. "name: value" loses exactly one space after the colon;
//   a line without a colon is a field with the value "". Unknown fields are ignored.
// - Data lines join with "\n". An empty line dispatches the event, unless it had no data line.
// - An event still unfinished when the stream ends is discarded.
//
// An ES module, loaded where it is needed with `await import("./sse.js")`: the URL is relative
// to the importing script, so it also works behind a proxy prefix (JupyterHub).

// The parser: feed it text as it arrives, cut anywhere; it returns the completed events.
export class EventStreamParser {
  lastEventId = ""; // the standard's "last event ID string": what a reconnection would send
  retry = null; // the reconnection time (ms) the server asked for, if it did
  #line = ""; // the unfinished line
  #skipLF = false; // the last piece ended with CR: a leading LF is the rest of its CRLF
  #data = []; // data lines of the unfinished event
  #type = "";
  #id = ""; // the standard's "last event ID buffer"

  // Returns [{type, data, lastEventId}, ...], possibly empty.
  feed(text) {
    if (!text) return [];
    if (this.#skipLF && text[0] === "\n") text = text.slice(1);
    this.#skipLF = text.endsWith("\r");
    const lines = (this.#line + text).split(/\r\n|\r|\n/);
    this.#line = lines.pop(); // no line end yet: it waits for the next piece
    const events = [];
    for (const line of lines) {
      const event = this.#processLine(line);
      if (event) events.push(event);
    }
    return events;
  }

  #processLine(line) {
    if (line === "") return this.#dispatch();
    if (line[0] === ":") return null; // a comment: heartbeats look like this
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1); // exactly one space is stripped
    if (name === "data") this.#data.push(value);
    else if (name === "event") this.#type = value;
    else if (name === "id" && !value.includes("\0")) this.#id = value;
    else if (name === "retry" && /^[0-9]+$/.test(value)) this.retry = Number(value);
    return null;
  }

  #dispatch() {
    this.lastEventId = this.#id;
    const data = this.#data;
    const type = this.#type || "message";
    this.#data = [];
    this.#type = "";
    if (!data.length) return null; // `event:` or `id:` alone, or an empty line: no event
    return { type, data: data.join("\n"), lastEventId: this.lastEventId };
  }
}

// The events of a fetch Response, as they arrive: `for await (const e of readEvents(response))`.
// TextDecoderStream keeps a UTF-8 character cut between reads for the next read (and drops a
// BOM); the parser keeps a line or an event cut between reads. Pass your own `parser` to read
// its `retry` afterwards: the reconnection time the server asked for.
export async function* readEvents(response, parser = new EventStreamParser()) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return; // an unfinished event is discarded
      yield* parser.feed(value);
    }
  } finally {
    reader.cancel().catch(() => {}); // the caller stopped early (or the stream failed)
  }
}
