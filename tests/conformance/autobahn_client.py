"""Plays the client side of the Autobahn|Testsuite with ``fastws.connect``.

    python -m tests.conformance.autobahn_client --port 9001 [--api listener|iterator]

Asks wstest's fuzzing server (see ``tests.conformance.autobahn.run_fuzzingserver``)
how many cases it has, runs each one at ``/runCase`` by echoing every message
back until the server closes, then asks for ``/updateReports`` so that the
verdicts are written. Autobahn judges the cases; this runner only reports
connections that errored or hung, which is what failing cases are expected to do.

Two ways to echo:

- ``listener`` (default): the callback API echoes from ``on_message``, as
  ``python -m fastws echo`` does on the server side, so both sides are judged alike.
- ``iterator``: ``async for message in ws: await ws.send(message)``. When a valid
  message and an invalid frame arrive in one read, the connection is failed before
  the coroutine gets to echo the message, and the suite calls cases such as 3.2, 4.1.3
  and 5.15 NON-STRICT: an artefact of echoing from a coroutine, not of the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import fastws

Connect = Callable[[str], AbstractAsyncContextManager[Any]]
"""Opens a client connection to a URL; the connection has recv(), send() and iterates."""
EchoCase = Callable[[str], Awaitable[None]]
"""Connects to one case's URL and echoes every message until the connection closes."""

MAX_CASES = 1000  # the suite has 517; more means something is wrong
MAX_MESSAGE_SIZE = 64 << 20  # as `python -m fastws echo`; the suite sends up to 16 MiB


def connect_fastws(url: str, listener: fastws.Listener | None = None) -> Any:
    """The client under test: fastws offering permessage-deflate, limits fit for the suite.

    No keepalive pings: a ping of ours in the middle of a case is noise in its wire log.
    """
    return fastws.connect(
        url,
        listener=listener,
        compression=True,
        max_message_size=MAX_MESSAGE_SIZE,
        max_write_buffer=4 * MAX_MESSAGE_SIZE,
        ping_interval=None,
    )


class EchoListener(fastws.Listener):
    """Sends every message back as it came, from inside the read that completed it."""

    def on_message(self, ws: fastws.WebSocket, opcode: int, payload: memoryview) -> None:
        ws.send_message(opcode, payload)


async def echo_with_listener(url: str) -> None:
    async with connect_fastws(url, listener=EchoListener()) as ws:
        await ws.wait_closed()


async def echo_with_iterator(url: str) -> None:
    async with connect_fastws(url) as ws:
        async for message in ws:
            await ws.send(message)


ECHO_STYLES: dict[str, EchoCase] = {"listener": echo_with_listener, "iterator": echo_with_iterator}


async def fetch_case_count(connect: Connect, base_url: str) -> int:
    async with connect(f"{base_url}/getCaseCount") as ws:
        count = int(await ws.recv())
    if not 0 < count <= MAX_CASES:
        raise ValueError(f"the fuzzing server announced {count} cases")
    return count


async def update_reports(connect: Connect, base_url: str, agent: str) -> None:
    async with connect(f"{base_url}/updateReports?agent={agent}") as ws:
        async for _ in ws:
            pass


async def run_cases(
    port: int,
    agent: str = "fastws",
    echo_case: EchoCase = echo_with_listener,
    connect: Connect = connect_fastws,
    case_timeout: float = 120.0,
    progress: Callable[[str], None] = print,
) -> dict[int, str]:
    """Runs every case, then has the reports written; returns the cases that errored or hung."""
    base_url = f"ws://127.0.0.1:{port}"
    count = await asyncio.wait_for(fetch_case_count(connect, base_url), 30)
    progress(f"autobahn client runner: {count} cases, agent {agent}")
    started = time.monotonic()
    problems: dict[int, str] = {}
    for case in range(1, count + 1):
        url = f"{base_url}/runCase?case={case}&agent={agent}"
        try:
            await asyncio.wait_for(echo_case(url), case_timeout)
        except TimeoutError:
            problems[case] = f"still open after {case_timeout:.0f} s"
        except Exception as exc:  # failing cases end in errors by design; Autobahn judges
            problems[case] = f"{type(exc).__name__}: {exc}"
        if case % 25 == 0 or case == count:
            elapsed = int(time.monotonic() - started)
            progress(
                f"autobahn client runner: {case}/{count} cases run "
                f"({elapsed // 60}m{elapsed % 60:02d}s)"
            )
    await asyncio.wait_for(update_reports(connect, base_url, agent), 120)
    if problems:
        kinds = collections.Counter(problem.split(":")[0] for problem in problems.values())
        progress(f"autobahn client runner: {len(problems)} cases ended in an error: {dict(kinds)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.autobahn_client")
    parser.add_argument("--port", type=int, required=True, help="the fuzzing server's port")
    parser.add_argument("--agent", default="fastws", help="name the reports file the results under")
    parser.add_argument("--api", choices=sorted(ECHO_STYLES), default="listener")
    parser.add_argument("--case-timeout", type=float, default=120.0)
    parser.add_argument("--verbose", action="store_true", help="print each case's error")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, flush=True)

    import uvloop

    problems = uvloop.run(
        run_cases(
            args.port,
            args.agent,
            echo_case=ECHO_STYLES[args.api],
            case_timeout=args.case_timeout,
            progress=progress,
        )
    )
    if args.verbose:
        for case, problem in problems.items():
            progress(f"  case {case}: {problem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
