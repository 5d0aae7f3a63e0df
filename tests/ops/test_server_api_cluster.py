"""The server API on a cluster: two workers sharing the master's memory broker, and two
hub processes sharing Redis. Each operation is asked of one process and must reach the
connections of the other."""

from __future__ import annotations

import asyncio

from tests.support.hooks_app import proxy_backend
from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess, dev_token
from tests.support.loops import run_async
from tests.support.ops import metric
from tests.support.polling import until
from tests.support.redis import RedisServer

CHANNEL = "chat:api"  # the default chat:* options: history, presence, join/leave


async def open_client(hub: HubProcess, user: str) -> HubClient:
    return await HubClient.open(hub.port, token=await dev_token(hub.port, user))


async def on_both_workers(hub: HubProcess, user: str) -> list[HubClient]:
    """Connections of ``user``, opened until both workers hold some (bounded)."""
    clients = [await open_client(hub, user)]
    for _ in range(40):
        samples = await hub.metrics()
        if all(metric(samples, "fastws_connections", worker=w) > 0 for w in ("0", "1")):
            return clients
        clients.append(await open_client(hub, user))
    raise AssertionError("every connection landed on the same worker")


async def check_cluster_wide(ask: HubProcess, alices: list[HubClient], bob: HubClient) -> None:
    """Every operation asked of ``ask`` reaches every connection, wherever it is."""

    async def call(method: str, target: str, body: object = None) -> object:
        status, answer = await ask.api(method, target, body)
        assert status == 200, answer
        return answer["result"]

    # Subscribed by the server: a subscribe push, then the channel's publications.
    await call("POST", "/api/v1/subscribe", {"user": "alice", "channel": CHANNEL})
    for client in alices:
        assert (await client.pushes_of("subscribe", 1))[0]["channel"] == CHANNEL
    await call("POST", "/api/v1/publish", {"channel": CHANNEL, "data": "hi"})
    for client in alices:
        assert (await client.pushes_of("pub", 1))[0]["data"] == "hi"
    assert not [p for p in bob.pushes if p["push"] in ("subscribe", "pub")]

    # Presence counts, active channels and every node's numbers.
    stats = {"clients": len(alices), "users": 1}

    async def presence_counted() -> bool:
        return await call("GET", f"/api/v1/presence_stats?channel={CHANNEL}") == stats

    await until(presence_counted, "every server-side subscriber in presence")
    subscribers = {CHANNEL: {"subscribers": len(alices)}}

    async def channels_counted() -> bool:
        return (await call("GET", "/api/v1/channels?pattern=chat:*"))["channels"] == subscribers

    await until(channels_counted, "the subscribers of every node counted")

    async def nodes_counted() -> bool:
        nodes = (await call("GET", "/api/v1/info"))["nodes"]
        return len(nodes) == 2 and sum(n["connections"] for n in nodes) == len(alices) + 1

    await until(nodes_counted, "both nodes in info")

    # One connection unsubscribed, wherever it is.
    last = alices[-1]
    body = {"user": "alice", "channel": CHANNEL, "client": last.client_id}
    await call("POST", "/api/v1/unsubscribe", body)
    assert (await last.pushes_of("unsubscribe", 1))[0]["channel"] == CHANNEL

    # History removed for every node: the stream goes on at the same position.
    await call("POST", "/api/v1/history_remove", {"channel": CHANNEL})
    history = await call("GET", f"/api/v1/history?channel={CHANNEL}")
    assert history["publications"] == [] and history["offset"] == 1

    # Disconnect each connection by its id, then end the rest of alice's by a refresh.
    for client in alices[:-1]:
        body = {"client": client.client_id, "code": 4100, "reason": "moved", "reconnect": True}
        await call("POST", "/api/v1/disconnect", body)
        assert await client.closed() == (4100, "moved")
    await call("POST", "/api/v1/refresh", {"user": "alice", "expired": True})
    assert (await last.closed())[0] == 4501
    await bob.no_more_pushes()


@run_async(loops=("uvloop",), timeout=90)
async def test_every_operation_reaches_both_workers() -> None:
    async with HubProcess("--workers", "2") as hub:
        alices = await on_both_workers(hub, "alice")
        bob = await open_client(hub, "bob")
        try:
            await check_cluster_wide(hub, alices, bob)
        finally:
            await asyncio.gather(*(c.close() for c in [*alices, bob]))


@run_async(loops=("uvloop",), timeout=90)
async def test_every_operation_reaches_both_nodes_through_redis(redis_server: RedisServer) -> None:
    broker = ("--broker", redis_server.url)
    async with HubProcess(*broker) as one, HubProcess(*broker) as two:
        alices = [await open_client(one, "alice"), await open_client(two, "alice")]
        bob = await open_client(two, "bob")
        try:
            await check_cluster_wide(one, alices, bob)
        finally:
            await asyncio.gather(*(c.close() for c in [*alices, bob]))


@run_async(loops=("uvloop",), timeout=90)
async def test_occupied_and_vacated_are_told_once_across_two_workers() -> None:
    seen: list[dict] = []
    async with proxy_backend(seen) as base:
        async with HubProcess("--workers", "2", "--proxy-notify-endpoint", f"{base}/notify") as hub:
            clients = await on_both_workers(hub, "alice")
            for client in clients:
                await client.result("subscribe", {"channel": "chat:x"})
            for client in clients:
                await client.result("unsubscribe", {"channel": "chat:x"})
            await asyncio.gather(*(c.close() for c in clients))
            for _ in range(250):
                if len([e for e in seen if e["event"] == "disconnect"]) == len(clients):
                    break
                await asyncio.sleep(0.02)
    events = [(e["event"], e.get("channel")) for e in seen if e["event"] != "disconnect"]
    assert events == [("channel_occupied", "chat:x"), ("channel_vacated", "chat:x")]
    assert len([e for e in seen if e["event"] == "disconnect"]) == len(clients)
