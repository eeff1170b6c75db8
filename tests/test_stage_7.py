"""Stage 7's check catches the mistakes a learner plausibly makes, each at its own behaviour.

Each test copies the reference project, breaks one thing in its room.py and runs the stage's
check on it: the check must fail, and at the behaviour that the mistake breaks. (Run against
the unbroken reference, each of these tests fails: the check passes.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from server.course.stages import check_stage
from tests.stage_checks import broken, reference_and_stubs, reference_copy

pytestmark = [pytest.mark.nginx, pytest.mark.redis, pytest.mark.stage]

test_the_reference_passes, test_the_stubs_fail_with_a_hint = reference_and_stubs(7)

# One reader per worker for all its listeners, each with a bounded queue that the reader
# waits on (`await queue.put`): lesson 09's hub without its "never wait" (exercise 1). Once a
# listener stops reading, its queue fills and the reader waits, for every listener on the worker.
SHARED_READER = """
QUEUES: set = set()
READER = None


async def read_room():
    last = await start_after(None)
    while True:
        found = await REDIS.xread({ROOM: last}, count=100, block=1000)
        for _key, entries in found or []:
            for last, fields in entries:
                for queue in list(QUEUES):
                    await queue.put((last, fields["data"]))


async def entries_after(last_id):
    import asyncio

    global READER
    if READER is None:
        READER = asyncio.create_task(read_room())
    queue = asyncio.Queue(maxsize=10)
    QUEUES.add(queue)
    try:
        while True:
            try:
                yield await asyncio.wait_for(queue.get(), HEARTBEAT)
            except TimeoutError:
                yield None
    finally:
        QUEUES.discard(queue)


"""


def shared_reader(source: str) -> str:
    start, end = source.index("async def entries_after"), source.index("@router.post")
    return source[:start] + SHARED_READER.lstrip() + source[end:]


# (what the learner got wrong, [(the reference's text, theirs)], the behaviour that must miss)
MISTAKES = [
    (
        "a `message: Message` parameter: FastAPI's 422 fails on a lone surrogate",
        [
            ("post_message(request: Request)", "post_message(message: Message)"),
            ("    message = await read_message(request)\n", ""),
        ],
        "a bad post",
    ),
    (
        "XREAD after `$` each time, not after the last id sent",
        [("xread({ROOM: last_id}", 'xread({ROOM: "$"}')],
        "20 messages posted at once reach every listener",
    ),
    (
        "re.match, which accepts an id that only starts well ('1-2-3')",
        [("re.fullmatch(", "re.match(")],
        "a malformed Last-Event-ID",
    ),
    (
        "every listener starts at the newest message, whatever its Last-Event-ID",
        [("    return last_id\n", "    return await start_after(None)\n")],
        "Last-Event-ID: <the first of three>",
    ),
]


@pytest.mark.parametrize(
    ("edits", "missed"), [pytest.param(*rest, id=name) for name, *rest in MISTAKES]
)
def test_a_mistake_fails_at_its_behaviour(
    edits: list[tuple[str, str]], missed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = broken(tmp_path, "room.py", *edits)

    passed = check_stage(7, folder)
    out = capsys.readouterr().out
    assert not passed, out
    assert f"❌ {missed}" in out, out


def test_a_reader_that_waits_for_one_listener_holds_up_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = reference_copy(tmp_path)
    room = folder / "room.py"
    room.write_text(shared_reader(room.read_text()))

    passed = check_stage(7, folder)
    out = capsys.readouterr().out
    assert not passed, out
    assert "❌ a listener that reads nothing does not hold up the others" in out, out
