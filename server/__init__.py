"""The course's server code: importable, small, one idea per module.

Read it bottom to top, as the course builds it:

- `server.sse` (and its neighbours at this level): the protocol core. The SSE wire format and
  the bookkeeping every stream shares, with no sockets and no framework.
- `server.apps`: the runnable servers, one module per app, each named for what it serves.
  They import the core; none imports another app or the course machinery.
- `server.clients`: what the lessons run against the apps (polling users, a resuming reader,
  a streamed reply put back together). They import the core too.
- `server.course`: the course's own machinery beside all of it: the launcher that starts and
  stops servers, the watchdog, the environment doctor, exercise checks, browser URLs, the
  wiretap. A team copying code into production copies from the first three, not from here.

Importing this package has no side effects: no servers start, nothing is patched.
"""
