"""websockets (asyncio implementation): ``async for`` echo; broadcast with its own helper."""

import argparse

from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.servers import _common

CONNECTIONS: set[ServerConnection] = set()


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def broadcaster(ws: ServerConnection) -> None:
    CONNECTIONS.add(ws)
    try:
        async for message in ws:
            command = _common.parse_broadcast_command(message) if isinstance(message, str) else None
            if command:
                count, payload = command
                others = [other for other in CONNECTIONS if other is not ws]
                for _ in range(count):
                    broadcast(others, payload)
    finally:
        CONNECTIONS.discard(ws)


async def main(args: argparse.Namespace) -> None:
    handler = echo if args.mode == "echo" else broadcaster
    async with serve(
        handler,
        args.host,
        args.port,
        compression=None,  # the others run without permessage-deflate too
        ping_interval=None,  # no keepalive traffic during a measurement
        max_size=None,
        backlog=_common.BACKLOG,
        ssl=_common.server_ssl_context(args),
    ) as server:
        _common.announce_ready(_common.bound_port(server.sockets))
        await _common.serve_until_cancelled()


if __name__ == "__main__":
    _common.run(main, __doc__)
