"""What every benchmark server shares: arguments, uvloop, TLS, the readiness line."""

from __future__ import annotations

import argparse
import asyncio
import resource
import ssl
import sys
from collections.abc import Awaitable, Callable

import uvloop

BACKLOG = 4096  # thousands of connections arrive at once in the memory and broadcast cases


def parse_args(
    description: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    if add_arguments:
        add_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mode", choices=("echo", "broadcast"), default="echo")
    parser.add_argument("--certfile", help="PEM certificate: serve over TLS")
    parser.add_argument("--keyfile", help="PEM private key for --certfile")
    return parser.parse_args()


def server_ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.certfile, args.keyfile)
    return context


def parse_broadcast_command(text: str) -> tuple[int, bytes] | None:
    """``broadcast N SIZE`` -> (N, payload of SIZE bytes); anything else -> None."""
    parts = text.split()
    if len(parts) != 3 or parts[0] != "broadcast":
        return None
    return int(parts[1]), b"b" * int(parts[2])


def announce_ready(port: int) -> None:
    print(f"ready {port}", flush=True)


def bound_port(sockets) -> int:
    return sockets[0].getsockname()[1]


def run(
    main: Callable[[argparse.Namespace], Awaitable[None]],
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Parse arguments, lift the descriptor limit, run ``main`` on uvloop until killed."""
    args = parse_args(description, add_arguments)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        uvloop.run(main(args))
    except KeyboardInterrupt:
        sys.exit(0)


async def serve_until_cancelled() -> None:
    await asyncio.Event().wait()
