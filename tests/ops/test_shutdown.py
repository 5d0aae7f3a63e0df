"""SIGTERM and SIGINT: every client is told (1001, reconnect), the process exits 0, cleanly."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess
from tests.support.loops import run_async

UNCLEAN = ("Traceback", "Task was destroyed", "was never awaited", "Exception ignored")


@pytest.mark.parametrize(
    ("args", "sig"),
    [
        (("--workers", "2"), signal.SIGTERM),
        (("--workers", "2"), signal.SIGINT),
        ((), signal.SIGTERM),
    ],
    ids=["workers-sigterm", "workers-sigint", "one-process-sigterm"],
)
@run_async(loops=("uvloop",), timeout=60)
async def test_shutdown_tells_every_client_and_exits_zero(
    args: tuple[str, ...], sig: signal.Signals
) -> None:
    async with HubProcess(*args, "--shutdown-timeout", "5") as hub:
        clients = []
        for i in range(6):
            client = await HubClient.open(hub.port)
            await client.result("subscribe", {"channel": f"chat:{i % 2}"})
            clients.append(client)
        await clients[0].result("publish", {"channel": "chat:0", "data": "last words"})
        workers = hub.workers()
        assert len(workers) == (2 if args else 0)
        hub.send(sig)
        for client in clients:
            async with asyncio.timeout(10):
                while True:  # publications may come first
                    push = await client.push()
                    if push["push"] == "disconnect":
                        break
            assert push["code"] == 1001 and push["reconnect"] is True
            assert (await client.closed())[0] == 1001
        code = await hub.exited()
        assert code == 0
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        log = hub.log()
        for text in UNCLEAN:
            assert text not in log, log
        assert "shutting down" in log
