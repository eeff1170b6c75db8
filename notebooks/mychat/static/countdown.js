// Stage 3: the countdown's events as list items, and "done" once the launch (id 0) has come.
// EventSource reconnects by itself and sends Last-Event-ID, so a restart loses nothing.

// BEGIN STAGE 3
// stage 3: your code here
// END STAGE 3
