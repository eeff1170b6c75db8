// Stage 3: the countdown's events as list items, and "done" once the launch (id 0) has come.
// EventSource reconnects by itself and sends Last-Event-ID, so a restart loses nothing.

// BEGIN STAGE 3
const list = document.querySelector("#countdown");
const statusLine = document.querySelector("#status"); // role="status": announced when it changes

// Relative, with the page's own query: under a hub's proxy path (/user/NAME/proxy/PORT/)
// it stays under that path, where "/countdown" would leave it.
const source = new EventSource("countdown" + location.search);

source.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data; // text, never HTML: an <img onerror=...> stays text
  list.append(item);
  if (event.lastEventId === "0") { // the launch: nothing more will come
    source.close();
    list.setAttribute("aria-busy", "false");
    statusLine.textContent = "Countdown done.";
  }
};

source.onerror = () => { // a lost connection is retried (CONNECTING); any other answer is not
  if (source.readyState === EventSource.CLOSED) {
    list.setAttribute("aria-busy", "false");
    statusLine.textContent = "The countdown stopped before the launch: reload to try again.";
  }
};
// END STAGE 3
