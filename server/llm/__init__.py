"""An upstream LLM, as the apps that stream its tokens see it (lesson 06, the capstone).

- `config`: which OpenAI-compatible server, which model, how long to wait, from the
  environment or a ``.env`` file;
- `chunks`: a streamed Chat Completion's raw body read as checked chunk dicts;
- `upstream`: an upstream error explained to a learner, and the shielded, bounded close that
  stops a generation nobody reads.
"""
