"""The servers under test: how to start each one and which kinds of case it can serve."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_KINDS = frozenset({"echo", "tls", "broadcast", "idle"})


@dataclass(frozen=True)
class ServerSpec:
    name: str
    module: str
    kinds: frozenset[str]
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    raw: bool = False  # plain TCP: the load generator skips the WebSocket handshake

    def supports(self, kind: str) -> bool:
        return kind in self.kinds


SERVERS = {
    spec.name: spec
    for spec in (
        ServerSpec("raw", "bench.servers.raw_server", frozenset({"echo", "tls", "idle"}), raw=True),
        ServerSpec("picows", "bench.servers.picows_server", ALL_KINDS),
        ServerSpec("fastws", "bench.servers.fastws_server", ALL_KINDS, ("--api", "callback")),
        ServerSpec("fastws-iter", "bench.servers.fastws_server", ALL_KINDS - {"tls"}, ("--api", "iter")),
        ServerSpec(
            "fastws-pure",
            "bench.servers.fastws_server",
            ALL_KINDS - {"tls"},
            ("--api", "callback"),
            {"FASTWS_PURE": "1"},
        ),
        ServerSpec("websockets", "bench.servers.websockets_server", ALL_KINDS - {"tls"}),
        ServerSpec("aiohttp", "bench.servers.aiohttp_server", ALL_KINDS - {"tls"}),
    )
}

REFERENCE = "picows"  # every table gives the ratio to this one
FASTWS_SERVERS = ("fastws", "fastws-iter", "fastws-pure")


def fastws_serves() -> bool:
    """Whether the fastws server API exists yet (the benchmark servers need ``fastws.serve``)."""
    try:
        import fastws
    except ImportError:
        return False
    return all(hasattr(fastws, name) for name in ("serve", "Listener", "broadcast"))


def default_servers() -> list[str]:
    names = list(SERVERS)
    if not fastws_serves():
        names = [name for name in names if name not in FASTWS_SERVERS]
    return names
