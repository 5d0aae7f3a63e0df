"""aiohttp: a web.WebSocketResponse handler that echoes; broadcast loops over the connections."""

import argparse

from aiohttp import WSMsgType, web

from bench.servers import _common

CONNECTIONS: set[web.WebSocketResponse] = set()


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=0)
    await ws.prepare(request)
    async for message in ws:
        if message.type == WSMsgType.BINARY:
            await ws.send_bytes(message.data)
        elif message.type == WSMsgType.TEXT:
            await ws.send_str(message.data)
    return ws


async def broadcaster(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=0)
    await ws.prepare(request)
    CONNECTIONS.add(ws)
    try:
        async for message in ws:
            command = (
                _common.parse_broadcast_command(message.data)
                if message.type == WSMsgType.TEXT
                else None
            )
            if command:
                count, payload = command
                others = [other for other in CONNECTIONS if other is not ws]
                for _ in range(count):
                    for other in others:
                        await other.send_bytes(payload)
    finally:
        CONNECTIONS.discard(ws)
    return ws


async def main(args: argparse.Namespace) -> None:
    app = web.Application()
    app.router.add_get("/", echo if args.mode == "echo" else broadcaster)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(
        runner,
        args.host,
        args.port,
        backlog=_common.BACKLOG,
        ssl_context=_common.server_ssl_context(args),
    )
    await site.start()
    _common.announce_ready(runner.addresses[0][1])
    await _common.serve_until_cancelled()


if __name__ == "__main__":
    _common.run(main, __doc__)
