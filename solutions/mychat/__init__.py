"""mychat: your streaming chat, built one stage per lesson from lesson 04 on.

Each stage's code goes between its `BEGIN STAGE N` and `END STAGE N` markers; `check_stage(N)`
in the lesson (or `make check STAGE=N` in a terminal) runs this package on real servers and says
what holds. `app.py` puts the pieces together; you do not need to change it.
"""
