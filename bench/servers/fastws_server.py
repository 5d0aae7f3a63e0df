"""fastws: the callback API (one Listener per connection) or the ``async for`` API.

``FASTWS_PURE=1`` in the environment selects the pure-Python codec and connection; the
harness sets it for the ``fastws-pure`` entry.
"""

import argparse

import fastws
from bench.servers import _common

TEXT = 0x1
CONNECTIONS: set = set()


class EchoListener(fastws.Listener):
    def on_message(self, ws, opcode: int, payload: memoryview) -> None:
        ws.send_message(opcode, payload)


class BroadcastListener(fastws.Listener):
    def on_connect(self, ws) -> None:
        CONNECTIONS.add(ws)

    def on_message(self, ws, opcode: int, payload: memoryview) -> None:
        if opcode == TEXT:
            command = _common.parse_broadcast_command(bytes(payload).decode())
            if command:
                count, message = command
                others = [other for other in CONNECTIONS if other is not ws]
                for _ in range(count):
                    fastws.broadcast(others, message)

    def on_close(self, ws, code: int, reason: str) -> None:
        CONNECTIONS.discard(ws)


async def iter_echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


async def iter_broadcast(ws) -> None:
    CONNECTIONS.add(ws)
    try:
        async for message in ws:
            command = _common.parse_broadcast_command(message) if isinstance(message, str) else None
            if command:
                count, payload = command
                others = [other for other in CONNECTIONS if other is not ws]
                for _ in range(count):
                    fastws.broadcast(others, payload)
    finally:
        CONNECTIONS.discard(ws)


HANDLERS = {
    ("callback", "echo"): EchoListener,
    ("callback", "broadcast"): BroadcastListener,
    ("iter", "echo"): iter_echo,
    ("iter", "broadcast"): iter_broadcast,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", choices=("callback", "iter"), default="callback")


async def main(args: argparse.Namespace) -> None:
    async with fastws.serve(
        HANDLERS[args.api, args.mode],
        args.host,
        args.port,
        compression=False,  # the others run without permessage-deflate too
        ping_interval=None,  # no keepalive traffic during a measurement
        backlog=_common.BACKLOG,
        ssl=_common.server_ssl_context(args),
    ) as server:
        _common.announce_ready(server.port)
        await server.serve_forever()


if __name__ == "__main__":
    _common.run(main, __doc__, add_arguments)
