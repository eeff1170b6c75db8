"""The course's server code: importable, small, one idea per module.

Importing this package has no side effects: no servers start, nothing is patched.
"""
