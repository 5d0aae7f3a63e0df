"""Several workers on one port (``--workers 2``, memory broker in the master), for real."""

from __future__ import annotations

import asyncio
import os
import signal

from fastws.hub import Client
from tests.support.hubprocess import HubProcess, dev_token
from tests.support.loops import run_async
from tests.support.ops import metric
from tests.support.polling import until

CHANNEL = "chat:ops"  # the default chat:* options: history 100 for 300 s, presence, join/leave


async def clients_on_every_worker(hub: HubProcess, users: list[str]) -> list[Client]:
    """Hub clients, one per user, opened until both workers hold some (bounded)."""
    clients = []
    for user in users:
        client = Client(hub.url(), token=await dev_token(hub.port, user), backoff_base=0.1)
        await client.connect()
        clients.append(client)
    for _ in range(40):
        samples = await hub.metrics()
        if all(metric(samples, "fastws_connections", worker=w) > 0 for w in ("0", "1")):
            return clients
        extra = Client(hub.url(), token=await dev_token(hub.port, "spare"))
        await extra.connect()
        clients.append(extra)
    raise AssertionError("every connection landed on the same worker")


async def collect(client: Client, channel: str) -> list:
    received: list = []
    await client.subscribe(channel, received.append)
    return received


@run_async(loops=("uvloop",), timeout=90)
async def test_clients_on_different_workers_share_channels_users_presence_and_history() -> None:
    async with HubProcess("--workers", "2") as hub:
        users = [f"u{i}" for i in range(6)]
        clients = await clients_on_every_worker(hub, users)
        try:
            named = clients[: len(users)]
            inboxes = [await collect(c, CHANNEL) for c in named]
            # Publications: every subscriber, whichever worker, gets each one in order.
            for i in range(5):
                await named[i % len(named)].publish(CHANNEL, {"n": i})
            await until(lambda: all(len(box) == 5 for box in inboxes), "5 publications each")
            for box in inboxes:
                assert [p.data["n"] for p in box] == list(range(5))
                assert [p.offset for p in box] == list(range(box[0].offset, box[0].offset + 5))
            # Presence: every client of every worker is listed.
            present = await named[0].presence(CHANNEL)
            assert {info.user for info in present.values()} == set(users)
            # Private messages reach the user wherever it is connected.
            got: dict[str, list] = {u: [] for u in users}
            readers = [
                asyncio.create_task(read_messages(c, got[u], 1)) for u, c in zip(users, named, strict=True)
            ]
            for user in users:
                await named[0].send(user, {"to": user})
            await asyncio.wait_for(asyncio.gather(*readers), 10)
            assert all(got[u][0].data == {"to": u} for u in users)
            # Recovery: a dropped client comes back (maybe on another worker) with what it missed.
            victim, box = named[1], inboxes[1]
            victim.drop()
            for i in range(5, 10):
                await named[0].publish(CHANNEL, {"n": i})
            await until(lambda: len(box) == 10, "the dropped client recovers")
            assert [p.data["n"] for p in box] == list(range(10))
            assert any(p.recovered for p in box[5:]) or victim.reconnects == 0
            assert victim.subscriptions[CHANNEL].resyncs == 0
            # The HTTP API, served by either worker, sees the same history.
            status, body = await hub.api("GET", f"/api/history?channel={CHANNEL}")
            assert status == 200 and len(body["result"]["publications"]) == 10
        finally:
            await asyncio.gather(*(c.close() for c in clients))
        assert await hub.stop() == 0


async def read_messages(client: Client, into: list, count: int) -> None:
    async for message in client.messages():
        into.append(message)
        if len(into) >= count:
            return


@run_async(loops=("uvloop",), timeout=90)
async def test_a_crashed_worker_is_restarted_and_the_port_keeps_serving() -> None:
    async with HubProcess("--workers", "2") as hub:
        before = hub.workers()
        assert len(before) == 2
        client = Client(hub.url(), token=await dev_token(hub.port, "keeper"), backoff_base=0.1)
        await client.connect()
        try:
            sub = await client.subscribe(CHANNEL)
            offset = await client.publish(CHANNEL, "before")
            os.kill(before[0], signal.SIGKILL)
            await hub.wait_log("exited unexpectedly with signal SIGKILL; restarting")
            await hub.wait_log("restarted")
            after = hub.workers()
            assert len(after) == 2 and before[0] not in after and before[1] in after
            # History lives in the master: the stream goes on under the same epoch.
            assert await client.publish(CHANNEL, "after") == offset + 1
            received = []
            async with asyncio.timeout(10):
                async for pub in sub:
                    received.append(pub.data)
                    if pub.data == "after":
                        break
            assert received[-2:] == ["before", "after"]
            samples = await hub.metrics()
            assert metric(samples, "fastws_worker_restarts_total") == 1
            assert metric(samples, "fastws_workers", state="serving") == 2
        finally:
            await client.close()
        assert await hub.stop() == 0


@run_async(loops=("uvloop",), timeout=90)
async def test_with_redis_workers_use_it_and_an_upgrade_loses_nothing(redis_server) -> None:
    args = ("--workers", "2", "--broker", redis_server.url, "--drain-window", "1")
    async with HubProcess(*args) as hub:
        clients = await clients_on_every_worker(hub, ["r0", "r1", "r2", "r3"])
        try:
            inboxes = [await collect(c, CHANNEL) for c in clients[:4]]
            first = await clients[0].publish(CHANNEL, "before")
            await until(lambda: all(len(box) == 1 for box in inboxes), "first publication")
            samples = await hub.metrics()
            assert metric(samples, "fastws_broker_up", worker="0") == 1
            assert ("fastws_broker_up", (("worker", "master"),)) not in samples  # no broker there
            hub.send(signal.SIGUSR2)
            await hub.wait_listening(2)
            await hub.wait_log("drained", count=2)
            assert await clients[1].publish(CHANNEL, "after") == first + 1  # the same stream
            await until(lambda: all(len(box) == 2 for box in inboxes), "second publication")
            for client, box in zip(clients, inboxes, strict=False):
                assert [p.data for p in box] == ["before", "after"]
                assert client.subscriptions[CHANNEL].resyncs == 0
        finally:
            await asyncio.gather(*(c.close() for c in clients))
        assert await hub.stop() == 0
