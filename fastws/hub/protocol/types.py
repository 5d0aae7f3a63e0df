"""Value types that the server and the client both use, so that each has one shape."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a channel's stream is: ``offset`` publications into the life named ``epoch``.

    On the wire it is the ``{"offset": N, "epoch": E}`` of subscribe and history
    replies, and of the ``since`` a client sends to recover from it.
    """

    offset: int
    epoch: str

    def to_wire(self) -> dict:
        return {"offset": self.offset, "epoch": self.epoch}


__all__ = ["StreamPosition"]
