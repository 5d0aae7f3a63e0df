"""Where the Python heap of an idle server connection goes, by allocation site.

    python -m bench.idle_heap                       # callback API, 1,000 connections
    python -m bench.idle_heap --api iter --depth 6  # async for API, deeper tracebacks
    python -m bench.idle_heap --api hub             # hub connections, as python -m bench scale

A server on uvloop (compression off, no keepalive, as in ``python -m bench``) upgrades
connections that a forked child opens with raw sockets and then leaves idle;
tracemalloc compares the server's heap before and after them. The figures are
per connection; the process RSS per connection (``idle-c*`` cases of ``python -m
bench run``) is about 0.2 KiB more, the allocator's own overhead.

``--api hub`` runs a hub in the process instead (the memory broker, heartbeats on), and
each connection does what a client of ``python -m bench scale`` does: ``connect`` with
one token shared by all, then ``subscribe`` to one of 100 channels and to one channel
all share.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import signal
import socket
import tracemalloc

import uvloop

import fastws
from fastws.codec import OP_TEXT, build_frame

WARMUP = 50  # connections opened before tracing starts: first-use caches are not counted
HUB_CHANNELS = 100
HUB_SECRET = "idle-heap-secret-of-at-least-32-bytes"


class Echo(fastws.Listener):
    def on_message(self, ws, opcode: int, payload: memoryview) -> None:
        ws.send_message(opcode, payload)


async def iter_echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


def text_frame(payload: bytes) -> bytes:
    """A client's masked text frame."""
    return build_frame(OP_TEXT, payload, mask=True)


def hub_commands(index: int, token: str) -> list[bytes]:
    """connect, then subscribe to channel ``index mod 100`` and to the shared one."""
    return [
        text_frame(b'{"id":1,"method":"connect","params":{"token":"%s"}}' % token.encode()),
        text_frame(b'{"id":2,"method":"subscribe","params":{"channel":"c%d"}}' % (index % HUB_CHANNELS)),
        text_frame(b'{"id":3,"method":"subscribe","params":{"channel":"all"}}'),
    ]


def upgrade_request(path: bytes = b"/") -> bytes:
    """A WebSocket upgrade request for ``path`` (no extensions: compression stays off)."""
    return (
        b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )


def open_idle_clients(port: int, count: int, go: int, path: bytes, token: str | None) -> None:
    """In the child: WARMUP connections, wait for the parent, then ``count`` more; stay idle
    (a hub client sends its commands first and leaves the replies unread)."""
    request = upgrade_request(path)
    sockets = []
    for i in range(WARMUP + count):
        if i == WARMUP:
            os.read(go, 1)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(request)
        sock.recv(4096)
        if token is not None:
            sock.sendall(b"".join(hub_commands(i, token)))
        sockets.append(sock)
    signal.pause()


async def start_server(api: str):
    """The server measured, its port, and how many connections it holds (a function)."""
    if api == "hub":
        from fastws.hub.app import Hub
        from fastws.hub.config import HubConfig

        config = HubConfig(
            host="127.0.0.1", port=0, workers=1, broker="memory://", jwt_secret=HUB_SECRET,
            allow_subscribe_for_client=True, log_level="warning",
        ).validate()
        hub = Hub(config)
        await hub.start()
        return hub, hub.port, lambda: sum(len(s.subscribers) for s in hub.node.channels.values())
    handler = Echo if api == "callback" else iter_echo
    server = await fastws.serve(handler, "127.0.0.1", 0, compression=False, ping_interval=None)
    return server, server.port, lambda: len(server.connections)


async def measure(api: str, count: int, depth: int, top: int) -> None:
    server, port, held = await start_server(api)
    token = None
    if api == "hub":
        from fastws.hub.config import HubConfig
        from fastws.hub.tokens import connection_token

        token = connection_token(HubConfig(jwt_secret=HUB_SECRET), "load", 86400)
    path = b"/connection" if api == "hub" else b"/"
    per = 2 if api == "hub" else 1  # a hub connection holds two subscriptions
    go_read, go_write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            open_idle_clients(port, count, go_read, path, token)
        finally:
            os._exit(0)
    try:
        while held() < WARMUP * per:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        gc.collect()
        tracemalloc.start(depth)
        before = tracemalloc.take_snapshot()
        os.write(go_write, b"x")
        while held() < (WARMUP + count) * per:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    stats = after.compare_to(before, "traceback")
    total = sum(stat.size_diff for stat in stats)
    print(f"{api}: {total / count:,.0f} B of Python heap per idle connection")
    for stat in stats[:top]:
        print(f"{stat.size_diff / count:7,.0f} B {stat.count_diff / count:5.1f} blocks")
        for line in stat.traceback.format()[-2 * min(depth, 2) :]:
            print("        " + line)
    if api == "hub":
        await server.close()
    else:
        await server.close(timeout=1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_heap", description=__doc__.split("\n")[0])
    parser.add_argument("--api", choices=("callback", "iter", "hub"), default="callback")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--depth", type=int, default=1, help="frames per allocation site")
    parser.add_argument("--top", type=int, default=20, help="sites shown")
    args = parser.parse_args()
    uvloop.run(measure(args.api, args.connections, args.depth, args.top))


if __name__ == "__main__":
    main()
