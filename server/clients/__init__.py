"""Clients the lessons run against the apps: polling users, a resuming reader, reply assembly.

They parse with the same core the servers encode with (`server.sse`), so a lesson sees
exactly what a browser would.
"""
