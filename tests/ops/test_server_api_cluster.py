"""The server API on a cluster: two workers sharing the master's memory broker, and two
hub processes sharing Redis. Each operation is asked of one process and must reach the
connections of the other."""

from __future__ import annotations

import asyncio

from tests.support.cluster import on_both_workers, open_client
from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess
from tests.support.loops import run_async
from tests.support.polling import until
from tests.support.redis import RedisServer

CHANNEL = "chat:api"  # the default chat:* options: history, presence, join/leave


async def check_cluster_wide(
    ask: HubProcess, alices: list[HubClient], bob: HubClient, carols: list[HubClient]
) -> None:
    """Every operation asked of ``ask`` reaches every connection, wherever it is; alice
    and carol have connections on both processes, bob on one."""

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
        connections = len(alices) + 1 + len(carols)
        return len(nodes) == 2 and sum(n["connections"] for n in nodes) == connections

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

    # Disconnect each connection by its id.
    for client in alices[:-1]:
        body = {"client": client.client_id, "code": 4100, "reason": "moved", "reconnect": True}
        await call("POST", "/api/v1/disconnect", body)
        assert await client.closed() == (4100, "moved")

    # A batch: each command reaches every node, one that fails leaves the others be.
    commands = [
        {"method": "subscribe", "params": {"user": "carol", "channel": "chat:batch"}},
        {"method": "send", "params": {"user": "carol", "data": "psst"}},
        {"method": "publish", "params": {"channel": "bad channel", "data": 1}},
        {"method": "refresh", "params": {"user": "alice", "expired": True}},
        {"method": "channels", "params": {"pattern": "chat:*"}},
    ]
    replies = (await call("POST", "/api/v1/batch", {"commands": commands}))["replies"]
    assert len(replies) == len(commands), replies
    assert replies[0] == replies[1] == replies[3] == {"result": {}}
    assert replies[2]["error"]["code"] == 400
    assert "channels" in replies[4]["result"]
    for client in carols:
        # In either order (each node subscribes as it is told), among the joins of chat:*.
        pushes = {}
        while len(pushes) < 2:
            push = await client.push()
            if push["push"] != "join":
                pushes[push["push"]] = push
        assert pushes["message"]["data"] == "psst"
        assert pushes["subscribe"]["channel"] == "chat:batch"
    assert (await last.closed())[0] == 4501  # alice's last connection, ended by the refresh

    # Disconnect a user: every connection of theirs, on every node.
    body = {"user": "carol", "code": 4100, "reason": "moved"}
    await call("POST", "/api/v1/disconnect", body)
    for client in carols:
        assert await client.closed() == (4100, "moved")
    await bob.no_more_pushes()


@run_async(loops=("uvloop",), timeout=90)
async def test_every_operation_reaches_both_workers() -> None:
    async with HubProcess("--workers", "2") as hub:
        alices = await on_both_workers(hub, "alice")
        carols = await on_both_workers(hub, "carol")
        bob = await open_client(hub, "bob")
        try:
            await check_cluster_wide(hub, alices, bob, carols)
        finally:
            await asyncio.gather(*(c.close() for c in [*alices, *carols, bob]))


@run_async(loops=("uvloop",), timeout=90)
async def test_every_operation_reaches_both_nodes_through_redis(redis_server: RedisServer) -> None:
    broker = ("--broker", redis_server.url)
    async with HubProcess(*broker) as one, HubProcess(*broker) as two:
        alices = [await open_client(one, "alice"), await open_client(two, "alice")]
        carols = [await open_client(one, "carol"), await open_client(two, "carol")]
        bob = await open_client(two, "bob")
        try:
            await check_cluster_wide(one, alices, bob, carols)
        finally:
            await asyncio.gather(*(c.close() for c in [*alices, *carols, bob]))
