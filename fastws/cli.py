"""``python -m fastws``: the real-time hub by default; ``echo`` and ``check-config`` beside it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastws.hub.config import HubConfig

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
KEY_OPTIONS = (
    "jwt_secret",
    "jwt_secret_file",
    "jwt_public_key",
    "jwt_audience",
    "jwt_issuer",
    "jwt_leeway",
    "insecure",
)
"""The options the token commands accept after their name (all work before it)."""

EPILOG = """\
Every option OPTION can also be set with the environment variable FASTWS_OPTION
(upper case, e.g. FASTWS_JWT_SECRET, FASTWS_API_KEY, FASTWS_PORT) or as the key
OPTION of the TOML file given with --config (or FASTWS_CONFIG). Flags win over
variables, variables over the file, the file over defaults. The options of the default
namespace (channels without ':') are top-level; other namespaces are declared
only in the file, and every option is off unless set (docs/hub.md):

    [[namespaces]]
    name = "chat"          # the channels chat:...
    history_size = 100
    history_ttl = 300
    presence = true
    join_leave = true
    allow_subscribe_for_client = true

The hub refuses to start without a token key (jwt_secret_file, jwt_secret or
jwt_public_key) unless --insecure asks for an open development hub. Keep
secrets off the command line: --jwt-secret-file and --api-key-file read them
from files. See docs/security.md.

Operators make and check tokens with the same keys:

    python -m fastws gentoken --user alice --ttl 3600 --channels 'chat:*' --publish 'chat:*'
    python -m fastws gensubtoken --user alice --channel '$secret:room'
    python -m fastws checktoken TOKEN

With --workers above 1 (or auto), a master binds the port and supervises the
workers that share it; signal the master:

    SIGHUP    reload: new workers with fresh code and configuration; once they
              are ready the old ones let their clients reconnect (close 1012)
              over --drain-window seconds
    SIGUSR2   upgrade: the master re-executes itself (the installed fastws),
              handing the listening socket (and the memory broker's
              state) over; the port never closes
    SIGTERM   shut down: clients get close 1001 and may reconnect elsewhere

/metrics serves Prometheus metrics (one view of all workers), /health and
/ready the probes. See docs/operations.md, docs/hub.md and docs/protocol.md.
"""


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # plain asyncio works too, only slower
        logging.getLogger("fastws").warning("uvloop is not installed; using asyncio's loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _echo_parser(sub: argparse._SubParsersAction) -> None:
    echo = sub.add_parser("echo", help="run an echo server (conformance runs, benchmarks)")
    echo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
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


def _parser() -> argparse.ArgumentParser:
    from fastws.hub.config import add_arguments

    parser = argparse.ArgumentParser(
        prog="python -m fastws",
        description="fastws real-time hub: WebSocket /connection, HTTP API /api/, "
        "probes /health and /ready, demo page /",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # gentoken's --history is not an abbreviation of --history-size
    )
    add_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _echo_parser(sub)
    check = sub.add_parser(
        "check-config",
        help="validate a TOML configuration file, with the FASTWS_* variables on top "
        "(exit status 0 or 1)",
    )
    check.add_argument("file", help="the TOML file")
    _token_parsers(sub)
    return parser


def _token_parsers(sub: argparse._SubParsersAction) -> None:
    from fastws.hub.config import add_arguments
    from fastws.hub.tokens import GRANT_CLAIMS

    gen = sub.add_parser("gentoken", help="print a connection token signed with jwt_secret")
    gen.add_argument("--user", required=True, help="the 'sub' claim: the user id")
    for claim in GRANT_CLAIMS:
        gen.add_argument(
            f"--{claim}",
            dest=f"claim_{claim}",
            nargs="+",
            metavar="USER" if claim == "send" else "PATTERN",
            help=f"the '{claim}' claim",
        )
    subtoken = sub.add_parser("gensubtoken", help="print a subscription token for one channel")
    subtoken.add_argument("--user", required=True, help="the 'sub' claim: the user id")
    subtoken.add_argument("--channel", required=True, help="the 'channel' claim")
    for command in (gen, subtoken):
        command.add_argument(
            "--ttl", type=float, default=3600, help="seconds the token is valid (default 3600)"
        )
        command.add_argument("--info", metavar="JSON", help="the 'info' claim, a JSON object")
    check = sub.add_parser("checktoken", help="check a token as the hub would (exit 0 or 1)")
    check.add_argument("token", help="the JWT")
    for command in (gen, subtoken, check):
        add_arguments(command, KEY_OPTIONS)


def _check_config(path: str) -> int:
    from fastws.hub.config import ConfigError, check_file

    try:
        check_file(path, os.environ)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: ok")
    return 0


def _run_token_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from fastws.hub.config import ConfigError, flags_from_namespace, load_config
    from fastws.hub.tokens import (
        GRANT_CLAIMS,
        TokenError,
        check_token,
        connection_token,
        subscription_token,
    )

    flags, path = flags_from_namespace(args)
    try:
        config = load_config(flags, os.environ, path)
        if args.command == "gentoken":
            grants = {claim: getattr(args, f"claim_{claim}") for claim in GRANT_CLAIMS}
            print(connection_token(config, args.user, args.ttl, grants, args.info))
        elif args.command == "gensubtoken":
            print(subscription_token(config, args.user, args.channel, args.ttl, args.info))
        else:
            print(check_token(config, args.token))
    except ConfigError as exc:
        parser.exit(2, f"python -m fastws {args.command}: error: {exc}\n")
    except TokenError as exc:
        print(f"invalid: {exc.message} (close {exc.disconnect.code})", file=sys.stderr)
        return 1
    return 0


def _run_echo(args: argparse.Namespace) -> None:
    from fastws.echo import run_echo

    level = getattr(args, "log_level", "info")
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    _install_uvloop()
    asyncio.run(
        run_echo(
            args.host,
            args.port,
            compression=not args.no_compression,
            max_message_size=args.max_message_size,
        )
    )


def _run_hub(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from fastws.hub.app import run_hub
    from fastws.hub.config import ConfigError, flags_from_namespace, load_config
    from fastws.hub.logs import setup_logging
    from fastws.hub.process.supervisor import inherited_flags, run_supervisor, supervised

    flags, path = flags_from_namespace(args)
    flags.update(inherited_flags())  # the secrets an upgraded master kept off its argv

    def load() -> HubConfig:  # again on every reload: the file may have changed
        return load_config(flags, os.environ, path)

    try:
        config = load()
    except ConfigError as exc:
        parser.exit(2, f"python -m fastws: error: {exc}\n")
    multi = supervised(config)
    setup_logging(config.log_level, config.log_format, role="master" if multi else "hub")
    _install_uvloop()
    try:
        if multi:
            sys.exit(run_supervisor(config, load, flags, path))
        asyncio.run(run_hub(config))
    except ConfigError as exc:  # a key file that exists but cannot be used
        parser.exit(2, f"python -m fastws: error: {exc}\n")
    except OSError as exc:
        parser.exit(
            2, f"python -m fastws: error: cannot listen on {config.host}:{config.port}: {exc}\n"
        )


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "check-config":
        sys.exit(_check_config(args.file))
    if args.command in ("gentoken", "gensubtoken", "checktoken"):
        sys.exit(_run_token_command(parser, args))
    if args.command == "echo":
        _run_echo(args)
    else:
        _run_hub(parser, args)


if __name__ == "__main__":
    main()
