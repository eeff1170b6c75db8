"""The seed notes' example texts, one copy for every app and lesson that uses them.

The course grew from four study notes (in Korean). Their examples recur from lesson to
lesson, so a learner recognises them: the countdown that ends in liftoff, and the fake LLM
that introduces itself, one syllable at a time.
"""

LIFTOFF = "발사!"  # "Liftoff!": the last event of the countdown
PROMPT = "안녕하세요, 자기소개 해주세요."  # "Hello, please introduce yourself."
REPLY = "안녕하세요! 저는 AI 어시스턴트입니다."  # "Hello! I am an AI assistant."
