"""The benchmark cases: what is sent, over how many connections, with how much in flight."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024


@dataclass(frozen=True)
class Case:
    """One workload. ``kind`` decides which servers can run it and what is measured."""

    name: str
    kind: str  # "echo", "tls" (echo over TLS), "broadcast" or "idle"
    size: int = 0  # payload bytes per message
    conns: int = 1  # echo connections, broadcast receivers or idle connections
    window: int = 1  # messages in flight per connection
    messages: int = 0  # broadcast: messages sent to every receiver

    @property
    def metric(self) -> str:
        """The headline number of the case (what the ratio to picows compares)."""
        return {"broadcast": "deliveries_per_s", "idle": "bytes_per_conn"}.get(
            self.kind, "msgs_per_s"
        )

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "idle"


def _size_label(size: int) -> str:
    return f"{size // KIB}KiB" if size >= KIB and size % KIB == 0 else f"{size}B"


def echo(size: int, conns: int, window: int, tls: bool = False) -> Case:
    kind = "tls" if tls else "echo"
    return Case(f"{kind}-{_size_label(size)}-c{conns}-w{window}", kind, size, conns, window)


def broadcast(conns: int, messages: int, size: int) -> Case:
    return Case(f"broadcast-{_size_label(size)}-c{conns}-n{messages}", "broadcast", size, conns, 1, messages)


def idle(conns: int) -> Case:
    return Case(f"idle-c{conns}", "idle", conns=conns)


FULL = [
    *(echo(size, conns, window) for size in (64, KIB, 64 * KIB) for conns in (1, 100) for window in (1, 16)),
    broadcast(1000, 1000, 128),
    idle(5000),
    idle(10000),
    echo(KIB, 1, 1, tls=True),
    echo(KIB, 100, 16, tls=True),
]

QUICK = [
    echo(64, 1, 1),
    echo(KIB, 10, 16),
    broadcast(100, 1000, 128),  # big enough for the server's CPU time to be measurable
    idle(200),
    echo(KIB, 1, 1, tls=True),
]

ALL = {case.name: case for case in FULL + QUICK}
