"""A python-socketio node for the cluster benchmark: AsyncServer on aiohttp and uvloop,
joined to the other nodes by socketio's AsyncRedisManager.

    python -m bench.cluster_sio_server --port 8001 --redis redis://127.0.0.1:6379/0

A client connecting with ``?role=sub`` enters the room ``bench``; an event
``pub`` is emitted to that room on every node (through Redis), as a chat server
built on socketio would do. Prints ``ready PORT`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import parse_qs

import socketio
import uvloop
from aiohttp import web

ROOM = "bench"


async def main(args: argparse.Namespace) -> None:
    manager = socketio.AsyncRedisManager(args.redis)
    # Pings every 5 minutes: the benchmark's byte-counting subscribers do not answer them.
    sio = socketio.AsyncServer(
        async_mode="aiohttp", client_manager=manager, logger=False, ping_interval=300
    )

    @sio.event
    async def connect(sid: str, environ: dict, auth: object = None) -> None:
        if parse_qs(environ.get("QUERY_STRING", "")).get("role") == ["sub"]:
            await sio.enter_room(sid, ROOM)

    @sio.event
    async def pub(sid: str, data: object) -> None:
        await sio.emit("msg", data, room=ROOM)

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    print(f"ready {args.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True, help="redis://HOST:PORT/DB")
    uvloop.run(main(parser.parse_args()))
