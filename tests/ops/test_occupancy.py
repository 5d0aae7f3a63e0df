"""on_channel_occupied and on_channel_vacated over the HTTP proxy, told once for the whole
hub: across two workers sharing the master's counts, and across two nodes counted in
Redis; also when the worker or node holding a channel's last subscriber is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from tests.support.cluster import channel_events, on_both_workers, open_client
from tests.support.hooks_app import proxy_backend
from tests.support.hubprocess import HubProcess
from tests.support.loops import run_async
from tests.support.polling import until
from tests.support.redis import RedisServer

NODE_TTL = 1.5


async def told(seen: list[dict], expected: list[tuple[str, str]]) -> None:
    """Until the channel notifications are ``expected``; then they must stay so."""
    await until(lambda: len(channel_events(seen)) >= len(expected), f"told {expected[-1]}")
    assert channel_events(seen) == expected


@run_async(loops=("uvloop",), timeout=90)
async def test_two_workers_tell_once_and_a_killed_worker_vacates_once() -> None:
    seen: list[dict] = []
    async with proxy_backend(seen) as base:
        async with HubProcess("--workers", "2", "--proxy-notify-endpoint", f"{base}/notify") as hub:
            clients = await on_both_workers(hub, "alice")
            for client in clients:
                await client.result("subscribe", {"channel": "chat:x"})
            for client in clients:
                await client.result("unsubscribe", {"channel": "chat:x"})
            expected = [("channel_occupied", "chat:x"), ("channel_vacated", "chat:x")]
            await told(seen, expected)

            for client in clients:
                await client.result("subscribe", {"channel": "chat:k"})
            expected.append(("channel_occupied", "chat:k"))
            await told(seen, expected)
            first, second = hub.workers()
            os.kill(first, signal.SIGKILL)  # the other worker still holds chat:k
            await hub.wait_log("restarted")
            os.kill(second, signal.SIGKILL)  # it held the last subscribers
            expected.append(("channel_vacated", "chat:k"))
            await told(seen, expected)

            again = await open_client(hub, "bob")
            await again.result("subscribe", {"channel": "chat:k"})
            await again.close()
            expected += [("channel_occupied", "chat:k"), ("channel_vacated", "chat:k")]
            await told(seen, expected)
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


@run_async(loops=("uvloop",), timeout=90)
async def test_two_redis_nodes_tell_once_and_a_killed_node_vacates_after_its_lease(
    redis_server: RedisServer,
) -> None:
    seen: list[dict] = []
    async with proxy_backend(seen) as base:
        args = (
            "--broker", redis_server.url,
            "--node-ttl", str(NODE_TTL),
            "--proxy-notify-endpoint", f"{base}/notify",
        )  # fmt: skip
        async with HubProcess(*args) as one, HubProcess(*args) as two:
            ann, bob = await open_client(one, "ann"), await open_client(two, "bob")
            await ann.result("subscribe", {"channel": "chat:x"})
            await bob.result("subscribe", {"channel": "chat:x"})
            await ann.result("unsubscribe", {"channel": "chat:x"})
            await bob.result("unsubscribe", {"channel": "chat:x"})
            expected = [("channel_occupied", "chat:x"), ("channel_vacated", "chat:x")]
            await told(seen, expected)

            await bob.result("subscribe", {"channel": "chat:k"})
            expected.append(("channel_occupied", "chat:k"))
            await told(seen, expected)
            two.kill()
            killed = time.monotonic()
            expected.append(("channel_vacated", "chat:k"))
            await told(seen, expected)
            # Not before the dead node's lease could have ended: told by the lease.
            assert time.monotonic() - killed >= NODE_TTL * 2 / 3

            await ann.result("subscribe", {"channel": "chat:k"})
            await ann.result("unsubscribe", {"channel": "chat:k"})
            expected += [("channel_occupied", "chat:k"), ("channel_vacated", "chat:k")]
            await told(seen, expected)
            await asyncio.gather(ann.close(), bob.close(), return_exceptions=True)
