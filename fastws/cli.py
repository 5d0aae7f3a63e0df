"""``python -m fastws``: command-line entry points."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # plain asyncio works too, only slower
        logging.getLogger("fastws").warning("uvloop is not installed; using asyncio's loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _echo_parser(sub: argparse._SubParsersAction) -> None:
    echo = sub.add_parser("echo", help="run an echo server (conformance runs, benchmarks)")
    echo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    echo.add_argument("--port", type=int, default=9001, help="port to listen on (default 9001)")
    echo.add_argument(
        "--no-compression", action="store_true", help="do not negotiate permessage-deflate"
    )
    echo.add_argument(
        "--max-message-size",
        type=int,
        default=64 << 20,
        help="largest message accepted, in bytes (default 64 MiB)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fastws", description="fastws WebSocket server")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    sub = parser.add_subparsers(dest="command")
    _echo_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    _install_uvloop()
    if args.command in (None, "echo"):
        from fastws.echo import run_echo

        host = getattr(args, "host", "127.0.0.1")
        port = getattr(args, "port", 8080)
        asyncio.run(
            run_echo(
                host,
                port,
                compression=not getattr(args, "no_compression", False),
                max_message_size=getattr(args, "max_message_size", 64 << 20),
            )
        )
    else:
        parser.print_help()
        sys.exit(2)


if __name__ == "__main__":
    main()
