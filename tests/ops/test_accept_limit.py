"""Workers that reach ``--accept-limit`` stop accepting and leave new clients to the others."""

from __future__ import annotations

import asyncio

from fastws.client import connect
from tests.support.hubprocess import HubProcess
from tests.support.loops import run_async
from tests.support.ops import metric
from tests.support.polling import until

LIMIT = 5


async def opened(url: str):
    return await connect(url, open_timeout=30)


@run_async(loops=("uvloop",), timeout=90)
async def test_full_workers_leave_new_connections_to_the_others_and_accept_again() -> None:
    async with HubProcess("--workers", "2", "--accept-limit", str(LIMIT)) as hub:
        held = [await connect(hub.url()) for _ in range(2 * LIMIT)]
        try:
            await hub.wait_log("the limit: no longer accepting", count=2)
            # Both workers are full: one more waits in the shared queue, unanswered.
            waiting = asyncio.create_task(opened(hub.url()))
            done, _ = await asyncio.wait({waiting}, timeout=1.0)
            assert not done
            # One client leaves: its worker accepts again and takes the waiting one.
            await held.pop().close()
            await hub.wait_log("accepting again")
            held.append(await asyncio.wait_for(waiting, 10))
            for ws in held[:3]:
                await ws.close()
            del held[:3]
            samples = {}

            async def counted() -> bool:
                samples.update(await hub.metrics())
                counts = [metric(samples, "fastws_connections", worker=w) for w in ("0", "1")]
                return sum(counts) == len(held)

            await until(counted, "the workers count the open connections")
            for worker in ("0", "1"):
                assert metric(samples, "fastws_connections", worker=worker) <= LIMIT
        finally:
            for ws in held:
                await ws.close()
        assert await hub.stop() == 0
