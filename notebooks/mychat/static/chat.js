// Stage 4 (lesson 06): the chat page. It POSTs the message with fetch and reads the reply, a
// stream of Server-Sent Events, from the response body as it arrives.
// URLs are relative ("chat", not "/chat"): behind JupyterHub the page lives under a prefix.

// BEGIN STAGE 4
// stage 4: your code here
// END STAGE 4
