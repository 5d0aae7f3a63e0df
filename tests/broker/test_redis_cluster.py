"""Several ``python -m fastws`` nodes joined through a private Redis: every hub feature
works across nodes as it does on one."""

from __future__ import annotations

import asyncio

from tests.support.hub import HubClient
from tests.support.hubprocess import dev_token, hub_nodes
from tests.support.loops import run_async
from tests.support.polling import until
from tests.support.redis import RedisServer


async def token_for(node, user: str) -> str:
    return await dev_token(node.port, user)


async def api(node, path: str, body: dict) -> dict:
    status, reply = await node.api("POST", path, body)
    assert status == 200, (path, status, reply)
    return reply["result"]


@run_async(loops=("uvloop",), timeout=120)
async def test_publications_reach_every_node_once_and_in_order(redis_server: RedisServer) -> None:
    async with hub_nodes(redis_server.url, 3) as (a, b, c):
        subscribers = [await HubClient.open(node.port) for node in (a, b, c, b)]
        for client in subscribers:
            await client.result("subscribe", {"channel": "stream:order"})
        over_ws = await HubClient.open(a.port)
        for i in range(20):  # over WebSocket on A
            await over_ws.result("publish", {"channel": "stream:order", "data": {"i": i}})
        for i in range(20, 40):  # over the HTTP API on A
            result = await api(a, "/api/v1/publish", {"channel": "stream:order", "data": {"i": i}})
            assert result["offset"] == i + 1
        for client in subscribers:
            pushes = await client.pushes_of("pub", 40)
            assert [p["offset"] for p in pushes] == list(range(1, 41))
            assert [p["data"] for p in pushes] == [{"i": i} for i in range(40)]
            await client.no_more_pushes()
        for client in [*subscribers, over_ws]:
            await client.close()


@run_async(loops=("uvloop",), timeout=120)
async def test_concurrent_publishers_on_two_nodes_share_one_order(redis_server: RedisServer) -> None:
    """Offsets come from Redis: publishers on different nodes never collide, and every
    subscriber sees the same sequence."""
    async with hub_nodes(redis_server.url, 2) as (a, b):
        watchers = [await HubClient.open(node.port) for node in (a, b)]
        for client in watchers:
            await client.result("subscribe", {"channel": "stream:both"})
        publishers = [await HubClient.open(node.port) for node in (a, b)]

        async def publish(client: HubClient, name: str) -> list[int]:
            offsets = []
            for i in range(30):
                reply = await client.result("publish", {"channel": "stream:both", "data": [name, i]})
                offsets.append(reply["offset"])
            return offsets

        offsets = await asyncio.gather(publish(publishers[0], "a"), publish(publishers[1], "b"))
        assert sorted(offsets[0] + offsets[1]) == list(range(1, 61))
        sequences = []
        for client in watchers:
            pushes = await client.pushes_of("pub", 60)
            assert [p["offset"] for p in pushes] == list(range(1, 61))
            sequences.append([tuple(p["data"]) for p in pushes])
            await client.no_more_pushes()
        assert sequences[0] == sequences[1]
        for client in watchers + publishers:
            await client.close()


@run_async(loops=("uvloop",), timeout=120)
async def test_presence_join_and_leave_across_nodes(redis_server: RedisServer) -> None:
    async with hub_nodes(redis_server.url, 2) as (a, b):
        alice = await HubClient.open(a.port, token=await token_for(a, "alice"))
        bob = await HubClient.open(b.port, token=await token_for(b, "bob"))
        await alice.result("subscribe", {"channel": "room:p"})
        await bob.result("subscribe", {"channel": "room:p"})
        joins = await alice.pushes_of("join", 2)  # her own, and bob's through node B
        assert sorted((j["info"]["user"], j["info"]["client"]) for j in joins) == [
            ("alice", alice.client_id),
            ("bob", bob.client_id),
        ]
        expected = {alice.client_id: {"user": "alice"}, bob.client_id: {"user": "bob"}}
        for client in (alice, bob):  # each asks its own node
            assert (await client.result("presence", {"channel": "room:p"}))["clients"] == expected
        status, reply = await b.api("GET", "/api/v1/presence?channel=room:p")
        assert status == 200 and reply["result"]["clients"] == expected
        await bob.result("unsubscribe", {"channel": "room:p"})
        (leave,) = await alice.pushes_of("leave", 1)
        assert leave["info"] == {"client": bob.client_id, "user": "bob"}
        presence = await alice.result("presence", {"channel": "room:p"})
        assert presence["clients"] == {alice.client_id: {"user": "alice"}}
        await bob.close()  # a closed connection leaves too
        await alice.no_more_pushes()
        await alice.close()


@run_async(loops=("uvloop",), timeout=120)
async def test_messages_and_disconnects_reach_a_user_on_every_node(
    redis_server: RedisServer,
) -> None:
    async with hub_nodes(redis_server.url, 2) as (a, b):
        alice = await HubClient.open(a.port, token=await token_for(a, "alice"))
        bobs = [await HubClient.open(node.port, token=await token_for(node, "bob")) for node in (a, b)]
        carol = await HubClient.open(b.port, token=await token_for(b, "carol"))
        await alice.result("send", {"user": "bob", "data": {"text": "hi"}})
        await api(b, "/api/v1/send", {"user": "bob", "data": "from the backend"})
        for bob in bobs:
            first, second = await bob.pushes_of("message", 2)
            assert first == {"push": "message", "from": "alice", "data": {"text": "hi"}}
            assert second == {"push": "message", "data": "from the backend"}
        await carol.no_more_pushes()
        await api(a, "/api/v1/disconnect", {"user": "bob", "reason": "banned"})
        for bob in bobs:
            assert await bob.closed() == (4503, "banned")
        await carol.no_more_pushes()  # other users stay
        await alice.no_more_pushes()
        for client in (alice, carol):
            await client.close()


@run_async(loops=("uvloop",), timeout=120)
async def test_a_client_moving_to_another_node_recovers_its_gap(redis_server: RedisServer) -> None:
    async with hub_nodes(redis_server.url, 2) as (a, b):
        client = await HubClient.open(a.port)
        reply = await client.result("subscribe", {"channel": "stream:move"})
        epoch = reply["epoch"]
        for i in range(10):
            await api(b, "/api/v1/publish", {"channel": "stream:move", "data": i})
        seen = [p["offset"] for p in await client.pushes_of("pub", 10)]
        await client.close()
        for i in range(10, 25):  # missed while away
            await api(a, "/api/v1/publish", {"channel": "stream:move", "data": i})
        moved = await HubClient.open(b.port)
        since = {"epoch": epoch, "offset": seen[-1]}
        reply = await moved.result("subscribe", {"channel": "stream:move", "since": since})
        assert reply["recovered"] is True and reply["epoch"] == epoch
        assert [p["offset"] for p in reply["publications"]] == list(range(11, 26))
        assert [p["data"] for p in reply["publications"]] == list(range(10, 25))
        await api(a, "/api/v1/publish", {"channel": "stream:move", "data": "live"})
        (push,) = await moved.pushes_of("pub", 1)
        assert push["offset"] == 26 and push["data"] == "live"
        await moved.no_more_pushes()
        await moved.close()


@run_async(loops=("uvloop",), timeout=120)
async def test_a_killed_node_loses_its_presence_and_its_clients_recover_elsewhere(
    redis_server: RedisServer,
) -> None:
    ttl = 2.0
    async with hub_nodes(redis_server.url, 2, "--presence-ttl", str(ttl)) as (a, b):
        victim = await HubClient.open(a.port, token=await token_for(a, "vic"))
        reply = await victim.result("subscribe", {"channel": "room:crash"})
        watcher = await HubClient.open(b.port, token=await token_for(b, "wat"))
        await watcher.result("subscribe", {"channel": "room:crash"})
        for i in range(5):
            await api(b, "/api/v1/publish", {"channel": "room:crash", "data": i})
        last = (await victim.pushes_of("pub", 5))[-1]["offset"]
        presence = await watcher.result("presence", {"channel": "room:crash"})
        assert set(presence["clients"]) == {victim.client_id, watcher.client_id}

        a.kill()  # SIGKILL: no leave, no cleanup; its entries stay until they expire
        for i in range(5, 8):
            await api(b, "/api/v1/publish", {"channel": "room:crash", "data": i})

        async def victim_gone() -> bool:
            presence = await watcher.result("presence", {"channel": "room:crash"})
            return set(presence["clients"]) == {watcher.client_id}

        # Entries are refreshed every ttl/3 and expire ttl after the last refresh.
        for _ in range(int((ttl + 5) / 0.1)):
            if await victim_gone():
                break
            await asyncio.sleep(0.1)
        assert await victim_gone(), "the killed node's presence entry did not expire"

        # The victim's client comes back through the other node, nothing lost.
        back = await HubClient.open(b.port, token=await token_for(b, "vic"))
        since = {"epoch": reply["epoch"], "offset": last}
        again = await back.result("subscribe", {"channel": "room:crash", "since": since})
        assert again["recovered"] is True
        assert [p["data"] for p in again["publications"]] == [5, 6, 7]
        for client in (back, watcher):
            await client.close()
        await until(lambda: a.process.poll() is not None, "node A dead", timeout=5)
