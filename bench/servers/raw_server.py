"""TCP echo on uvloop with no WebSocket at all: the ceiling every server is measured against."""

import argparse
import asyncio

from bench.servers import _common


class RawEcho(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def main(args: argparse.Namespace) -> None:
    if args.mode != "echo":
        raise SystemExit("the raw TCP server has no framing, hence no broadcast mode")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        RawEcho, args.host, args.port, backlog=_common.BACKLOG, ssl=_common.server_ssl_context(args)
    )
    _common.announce_ready(_common.bound_port(server.sockets))
    await _common.serve_until_cancelled()


if __name__ == "__main__":
    _common.run(main, __doc__)
