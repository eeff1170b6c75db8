"""The course's own machinery: how the lessons start, watch and check things.

`launcher` starts and stops servers as subprocesses (built from `supervisor`, `ports`,
`logs`, `binaries`, `nginx` and `errors`, with `reaper`, the watchdog that stops them when a
kernel dies), `doctor` checks the machine, `exercise` checks a learner's answer
without ever raising, `urls` builds browser URLs that work on a JupyterHub, `wiretap`
records and disturbs traffic, `browser` drives a real Chromium, `source` shows the pages'
JavaScript in a notebook from its file. None of it is needed to run
the apps in production.
"""
