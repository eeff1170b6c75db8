// What the two chat pages (chat.js for llm_relay, capstone.js for the capstone) do to their
// page, once: both have the same elements (#log, #message, #send, #stop, #status, #announce),
// the same states on <body data-state> (the tests read it) and the same rule for screen
// readers. Text is untrusted: it only ever goes in through textContent.

// The page's elements, and the helpers that change them.
export function chatView() {
  const log = document.getElementById("log");
  const input = document.getElementById("message");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const announcer = document.getElementById("announce"); // role="status": read out when it changes

  // A paragraph (or `tag`) of class `cls` at the end of the conversation.
  function line(cls, text, tag = "p") {
    const element = document.createElement(tag);
    element.className = cls;
    element.textContent = text;
    log.append(element);
    return element;
  }

  // A screen reader hears a reply once, when it has ended: its bubble is aria-busy while the
  // tokens arrive (nothing in it is announced), then this status region says how it ended.
  function announce(text) {
    announcer.textContent = text;
  }

  // An error line, also said once.
  function failed(text) {
    line("error", text);
    announce(text);
  }

  // "streaming" disables Send and enables Stop; every other state the reverse.
  function setState(state) {
    document.body.dataset.state = state;
    const busy = state === "streaming";
    // A focused button that becomes disabled drops focus to <body>: put it back in the box.
    if (document.activeElement === (busy ? sendButton : stopButton)) input.focus();
    sendButton.disabled = busy;
    stopButton.disabled = !busy;
  }

  return {
    log,
    input,
    form: document.getElementById("form"),
    stopButton,
    statusLine: document.getElementById("status"),
    line,
    announce,
    failed,
    setState,
  };
}

// Escape anywhere on the page does what the Stop button does, while a reply streams.
export function stopOnEscape(stop) {
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.dataset.state === "streaming") stop();
  });
}
