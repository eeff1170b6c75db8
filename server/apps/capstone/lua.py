"""Lua scripts called with named inputs, so that no index is counted by hand on either side.

A script's inputs are a dataclass: the fields marked `key()` are its ``KEYS``, the others its
``ARGV``, each in the order declared. `script(Inputs, body)` starts the script with the lines
``local gen, stream = KEYS[1], KEYS[2]`` (and the same for ``ARGV``), made from those fields,
and the body uses the names; `run` calls it with the dataclass filled in. Redis receives what
it would with hand-numbered ``KEYS`` and ``ARGV``: the same values, in the same order.
"""

from __future__ import annotations

from dataclasses import Field, field, fields, is_dataclass
from typing import Any, ClassVar, Protocol

from redis.commands.core import AsyncScript


class Inputs(Protocol):
    """A script's inputs: any dataclass."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]


def key() -> Any:
    """Mark a field of a script's inputs as one of its KEYS (Redis must be told which are)."""
    return field(metadata={"key": True})


def names(inputs: type[Inputs]) -> tuple[list[str], list[str]]:
    """The names of the script's KEYS and of its ARGV, each in the order declared."""
    if not is_dataclass(inputs):
        raise TypeError(f"{inputs.__name__} is not a dataclass")
    declared = fields(inputs)
    return [f.name for f in declared if f.metadata.get("key")], [
        f.name for f in declared if not f.metadata.get("key")
    ]


def script(inputs: type[Inputs], body: str) -> str:
    """`body` preceded by one ``local`` line for the KEYS and one for the ARGV, by name."""
    lines = []
    for table, named in zip(("KEYS", "ARGV"), names(inputs), strict=True):
        if named:
            slots = ", ".join(f"{table}[{i}]" for i in range(1, len(named) + 1))
            lines.append(f"local {', '.join(named)} = {slots}\n")
    return "".join(lines) + body.lstrip("\n")


async def run(registered: AsyncScript, inputs: Inputs) -> Any:
    """Call the script with `inputs` as its KEYS and ARGV, in the order `script` named them."""
    key_names, arg_names = names(type(inputs))
    return await registered(
        keys=[getattr(inputs, name) for name in key_names],
        args=[getattr(inputs, name) for name in arg_names],
    )
