"""The memory broker's state, handed from a master to the master that replaces it.

On an upgrade (SIGUSR2) the master re-executes itself, and with ``memory://``
the broker lives in it: without a handover every stream would start a new
epoch. The old master writes the state (``BrokerHost.state``: the memory
broker's streams, history, presence and node announcements, and what each
worker holds) as one msgpack map with a ``version`` into an unlinked temporary
file, and the new master inherits its descriptor, as it inherits the listening
socket. A file rather than a pipe: the state can outgrow a pipe's buffer, and
nobody reads it before the exec.

The reader trusts nothing: a state of another version, or whose values have
the wrong types, is refused with ``HandoverRefused`` naming what is wrong, and
the new master starts empty rather than with a broker it cannot vouch for.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import msgpack

VERSION = 1


class HandoverRefused(ValueError):
    """The state handed over cannot be taken: the message says why."""


def encode(state: dict[str, Any]) -> bytes:
    return msgpack.packb({**state, "version": VERSION}, use_bin_type=True)


def decode(data: bytes) -> dict[str, Any]:
    """The state in ``data``; HandoverRefused unless it is a map of this version."""
    try:
        state = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise HandoverRefused(f"not a msgpack value: {exc}") from None
    if not isinstance(state, dict):
        raise HandoverRefused(f"a map expected, got {type(state).__name__}")
    version = state.get("version")
    if version != VERSION:
        raise HandoverRefused(f"version {version!r}, this release reads version {VERSION}")
    return state


def write(state: dict[str, Any]) -> int:
    """A descriptor of an unlinked temporary file holding ``state`` (not inheritable yet)."""
    with tempfile.TemporaryFile() as file:
        file.write(encode(state))
        file.flush()
        return os.dup(file.fileno())


def read(fd: int) -> dict[str, Any]:
    """The state in the file of ``fd``, which is closed."""
    with os.fdopen(fd, "rb") as file:
        file.seek(0)
        return decode(file.read())


def rows(value: Any, shape: tuple[tuple[type, ...], ...], what: str) -> list[list]:
    """``value`` as a list of rows with one value of ``shape``'s types per column.

    Types are compared exactly (msgpack makes no subclasses): a bool is no int here.
    Floats must be finite. History can hold millions of values, so this stays plain."""
    if type(value) is not list:
        raise HandoverRefused(f"{what}: a list expected, got {type(value).__name__}")
    width = len(shape)
    for row in value:
        if type(row) is not list or len(row) != width:
            raise HandoverRefused(f"{what}: {str(row)[:80]} is not a row of {width} values")
        for item, kinds in zip(row, shape, strict=True):
            kind = type(item)
            if kind not in kinds or (kind is float and not math.isfinite(item)):
                raise HandoverRefused(f"{what}: {str(row)[:80]} is not a row of {width} values")
    return value


def strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HandoverRefused(f"{what}: a list of strings expected")
    return value


TEXT = (str,)
BYTES = (bytes,)
INT = (int,)
LIST = (list,)
NUMBER = (int, float)
TEXT_OR_NONE = (str, type(None))
BYTES_OR_NONE = (bytes, type(None))

__all__ = [
    "BYTES",
    "BYTES_OR_NONE",
    "INT",
    "LIST",
    "NUMBER",
    "TEXT",
    "TEXT_OR_NONE",
    "VERSION",
    "HandoverRefused",
    "decode",
    "encode",
    "read",
    "rows",
    "strings",
    "write",
]
