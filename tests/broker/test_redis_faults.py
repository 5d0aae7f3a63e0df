"""Redis failing under hub nodes: they degrade (503 at once, /ready 503, /health 200),
lose nothing silently, and recover by themselves."""

from __future__ import annotations

import asyncio
import json

from fastws.hub.client import Client
from fastws.hub.protocol import codes
from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess, dev_token, hub_nodes
from tests.support.loops import run_async
from tests.support.polling import until
from tests.support.redis import RedisServer

FAST_RETRY = ("--broker-cooldown", "0.2", "--broker-cooldown-max", "1")


def resubscribe_push(channel: str) -> dict:
    """The push that ends one subscription whose continuity was lost."""
    why = codes.INSUFFICIENT_STATE
    return {"push": "unsubscribe", "channel": channel, "code": why.code, "reason": why.reason}


async def ready_state(node: HubProcess) -> tuple[int, dict | str]:
    status, text = await node.probe("/ready")
    return status, (text if status == 200 else json.loads(text))


async def publish(node: HubProcess, channel: str, data: object) -> tuple[int, dict]:
    return await node.api("POST", "/api/v1/publish", {"channel": channel, "data": data})


async def steady_load(node: HubProcess, channel: str, acks: list, stop: asyncio.Event) -> None:
    """Publish 0, 1, 2... to ``channel`` through ``node``'s API every 10 ms until ``stop``
    (5,000 at most), keeping each number with the API's answer."""
    i = 0
    while not stop.is_set() and i < 5000:
        acks.append((i, await publish(node, channel, i)))
        i += 1
        await asyncio.sleep(0.01)


def pubsub_client_id(redis: RedisServer, node: HubProcess) -> str:
    """The Redis client id of ``node``'s pub/sub connection (it is named after the pid)."""
    name = f"name=fastws-pubsub-{node.process.pid} "
    for line in redis.command("CLIENT", "LIST").decode().splitlines():
        if name in line + " ":
            return line.split("id=", 1)[1].split()[0]
    raise AssertionError(f"no pub/sub connection of pid {node.process.pid}")


@run_async(loops=("uvloop",), timeout=120)
async def test_a_node_started_without_redis_becomes_ready_when_redis_starts(make_redis) -> None:
    redis = make_redis(start=False)
    async with hub_nodes(redis.url, 1, *FAST_RETRY) as (node,):
        assert await node.probe("/health") == (200, "ok")
        status, body = await ready_state(node)
        assert status == 503 and body["ready"] is False
        assert body["broker"]["state"] == "starting"
        assert body["broker"]["circuit"] in ("open", "half_open")
        client = await HubClient.open(node.port)  # connecting needs no broker
        code, message = await client.error("subscribe", {"channel": "room:a"})
        assert code == 503 and "redis" in message
        status, reply = await publish(node, "room:a", 1)
        assert status == 503 and reply["error"]["code"] == 503

        await asyncio.to_thread(redis.start)
        await node.wait_ready()
        assert (await node.broker_status())["state"] == "up"
        await client.result("subscribe", {"channel": "room:a"})
        status, reply = await publish(node, "room:a", "after")
        assert status == 200
        (push,) = await client.pushes_of("pub", 1)
        assert push["data"] == "after" and push["offset"] == reply["result"]["offset"]
        await client.close()


@run_async(loops=("uvloop",), timeout=120)
async def test_a_lost_pubsub_connection_is_resynced_without_client_action(
    redis_server: RedisServer,
) -> None:
    """Redis stays up but node B's pub/sub connection is cut: B reconnects, subscribes
    again and fills what it missed from history; its client notices nothing."""
    args = ("--broker-cooldown", "1")
    async with hub_nodes(redis_server.url, 2, *args) as (a, b):
        client = await HubClient.open(b.port)
        await client.result("subscribe", {"channel": "stream:cut"})
        for i in range(5):
            assert (await publish(a, "stream:cut", i))[0] == 200
        await client.pushes_of("pub", 5)

        redis_server.command("CLIENT", "KILL", "ID", pubsub_client_id(redis_server, b))
        for i in range(5, 15):  # B is not subscribed in Redis while its circuit is open
            assert (await publish(a, "stream:cut", i))[0] == 200
        async def b_tripped() -> bool:
            return (await b.broker_status())["trips"] == 1

        await until(b_tripped, "B trips")
        await b.wait_ready()
        for i in range(15, 20):
            assert (await publish(a, "stream:cut", i))[0] == 200
        pushes = await client.pushes_of("pub", 15, timeout=10)
        assert [p["offset"] for p in pushes] == list(range(6, 21))
        assert [p["data"] for p in pushes] == list(range(5, 20))
        await client.no_more_pushes()  # and no disconnect: continuity was kept
        await client.close()


@run_async(loops=("uvloop",), timeout=180)
async def test_redis_killed_and_restarted_under_load(redis_server: RedisServer) -> None:
    redis = redis_server
    args = (*FAST_RETRY, "--broker-failure-threshold", "2")
    async with hub_nodes(redis.url, 2, *args) as (a, b):
        received: list[tuple[str, object]] = []  # (epoch, publication)
        resyncs: list[bool | None] = []
        client = Client(
            f"ws://127.0.0.1:{b.port}/connection", backoff_base=0.05, backoff_max=0.5
        )
        await client.connect()
        sub = await client.subscribe(
            "stream:load",
            on_publication=lambda p: received.append((client.subscriptions["stream:load"].epoch, p)),
            on_resync=lambda s: resyncs.append(s.recovered),
        )
        first_epoch = sub.epoch
        other = await client.subscribe("stream:other")  # a channel nobody publishes to
        token = await dev_token(b.port, "quiet")
        member = await HubClient.open(b.port, token=token)  # in a channel nobody publishes to
        reply = await member.result("subscribe", {"channel": "room:quiet"})
        quiet = {"epoch": reply["epoch"], "offset": reply["offset"]}

        acks: list[tuple[int, dict]] = []
        stop = asyncio.Event()

        load = asyncio.create_task(steady_load(a, "stream:load", acks, stop))
        try:
            await until(lambda: len(received) >= 20, "publications before the kill", timeout=30)
            redis.kill()
            await until(lambda: any(status == 503 for _, (status, _) in acks[-5:]), "503s", timeout=30)
            for node in (a, b):
                assert await node.probe("/health") == (200, "ok")
                status, body = await ready_state(node)
                assert status == 503 and body["broker"]["state"] == "degraded"
            assert (await a.broker_status())["circuit"] in ("open", "half_open")
            failed = [reply for _, (status, reply) in acks if status == 503]
            assert failed[0]["error"]["code"] == 503
            code, _ = await member.error("presence", {"channel": "room:quiet"})
            assert code == 503

            await asyncio.to_thread(redis.start)
            for node in (a, b):
                await node.wait_ready()
            await until(
                lambda: sub.epoch != first_epoch and len(received) > 0 and resyncs,
                "the subscriber back on the new stream",
                timeout=30,
            )
            count = len(received)
            await until(lambda: len(received) >= count + 10, "publications after recovery", timeout=30)
        finally:
            stop.set()
            await load

        # The stream broke (Redis lost everything): the client was told, not fooled,
        # by an unsubscribe push, on the same connection, its other subscription kept.
        assert resyncs and resyncs[0] is False
        assert client.reconnects == 0 and client.state == "connected"
        assert client.subscriptions["stream:other"] is other and other.active
        # What it received is in order, without duplicates, within each epoch.
        assert {epoch for epoch, _ in received} == {first_epoch, sub.epoch}
        before = [p.offset for epoch, p in received if epoch == first_epoch]
        after = [p for epoch, p in received if epoch == sub.epoch]
        assert before == list(range(1, len(before) + 1))
        assert [p.offset for p in after] == list(range(after[0].offset, after[-1].offset + 1))
        # Nothing acknowledged in the new stream since the client rejoined it was lost.
        acked = [
            (reply["result"]["offset"], i)
            for i, (status, reply) in acks
            if status == 200 and reply["result"]["epoch"] == sub.epoch
        ]
        wanted = [i for offset, i in acked if after[0].offset <= offset <= after[-1].offset]
        assert [p.data for p in after] == wanted
        # Presence entries lost with Redis were put back by their node at once.
        status, reply = await a.api("GET", "/api/v1/presence?channel=room:quiet")
        assert status == 200 and list(reply["result"]["clients"]) == [member.client_id]
        # Node B subscribed to room:quiet again by itself: a publication there reaches it,
        # shows a new stream, and the member is told to resubscribe that channel only.
        await member.result("subscribe", {"channel": "room:other"})
        assert (await publish(a, "room:quiet", "new stream"))[0] == 200
        assert await member.pushes_of("unsubscribe", 1) == [resubscribe_push("room:quiet")]
        reply = await member.result("subscribe", {"channel": "room:quiet", "since": quiet})
        assert reply["recovered"] is False and reply["epoch"] != quiet["epoch"]
        assert (await publish(a, "room:other", "still here"))[0] == 200
        (push,) = await member.pushes_of("pub", 1)
        assert push["channel"] == "room:other" and push["data"] == "still here"
        await member.close()
        await client.close()


@run_async(loops=("uvloop",), timeout=120)
async def test_local_delivery_during_an_outage_changes_the_epoch(redis_server: RedisServer) -> None:
    redis = redis_server
    args = (*FAST_RETRY, "--local-delivery-on-outage", "true", "--broker-failure-threshold", "1")
    async with hub_nodes(redis.url, 1, *args) as (node,):
        client = await HubClient.open(node.port)
        reply = await client.result("subscribe", {"channel": "stream:local"})
        epoch = reply["epoch"]
        assert (await publish(node, "stream:local", "before"))[0] == 200
        await client.pushes_of("pub", 1)

        redis.kill()
        async def circuit_open() -> bool:
            return (await node.broker_status())["circuit"] != "closed"

        await until(circuit_open, "circuit open", timeout=30)
        status, reply = await publish(node, "stream:local", "during")
        assert status == 200 and reply["result"]["epoch"].startswith("local-")
        # The epoch changed under the subscriber: it is told to resubscribe, and does.
        assert await client.pushes_of("unsubscribe", 1) == [resubscribe_push("stream:local")]
        since = {"epoch": epoch, "offset": 1}
        reply = await client.result("subscribe", {"channel": "stream:local", "since": since})
        assert reply["recovered"] is False and reply["epoch"].startswith("local-")
        status, reply = await publish(node, "stream:local", "still during")
        assert status == 200 and reply["result"]["offset"] == 2
        (push,) = await client.pushes_of("pub", 1)
        assert push["data"] == "still during"

        await asyncio.to_thread(redis.start)
        await node.wait_ready()
        status, reply = await publish(node, "stream:local", "after")
        assert status == 200 and not reply["result"]["epoch"].startswith("local-")
        assert reply["result"]["epoch"] != epoch
        # and again when Redis is back
        assert await client.pushes_of("unsubscribe", 1) == [resubscribe_push("stream:local")]
        await client.close()


@run_async(loops=("uvloop",), timeout=180)
async def test_redis_with_aof_restarted_under_load_loses_nothing(make_redis) -> None:
    """With the settings docs/deployment.md recommends (AOF, fsync on every write),
    a Redis killed and started again keeps every stream: the subscriber notices nothing."""
    redis = make_redis(True, None, "--appendonly", "yes", "--appendfsync", "always")
    args = (*FAST_RETRY, "--broker-failure-threshold", "2")
    async with hub_nodes(redis.url, 2, *args) as (a, b):
        received: list[object] = []
        resyncs: list[bool | None] = []
        client = Client(
            f"ws://127.0.0.1:{b.port}/connection", backoff_base=0.05, backoff_max=0.5
        )
        await client.connect()
        sub = await client.subscribe(
            "stream:aof",
            on_publication=received.append,
            on_resync=lambda s: resyncs.append(s.recovered),
        )
        epoch = sub.epoch
        acks: list[tuple[int, tuple[int, dict]]] = []
        stop = asyncio.Event()

        load = asyncio.create_task(steady_load(a, "stream:aof", acks, stop))
        try:
            await until(lambda: len(received) >= 20, "publications before the kill", timeout=30)
            redis.kill()
            await until(lambda: any(status == 503 for _, (status, _) in acks[-5:]), "503s", timeout=30)
            await asyncio.to_thread(redis.start)
            for node in (a, b):
                await node.wait_ready()
            count = len(acks)
            await until(lambda: len(acks) >= count + 20, "publications after the restart", timeout=30)
        finally:
            stop.set()
            await load
        last = max(i for i, (status, _) in acks if status == 200)
        await until(lambda: any(p.data == last for p in received), "the last publication", timeout=30)

        # Same stream, no resync, the connection kept.
        assert resyncs == [] and sub.epoch == epoch
        assert client.reconnects == 0 and client.state == "connected"
        assert any(status == 503 for _, (status, _) in acks)
        # Once each and in order; every acknowledged publication is there, at its offset.
        assert [p.offset for p in received] == list(range(1, len(received) + 1))
        data = [p.data for p in received]
        assert data == sorted(set(data))
        acked = {i: reply["result"] for i, (status, reply) in acks if status == 200}
        assert all(result["epoch"] == epoch for result in acked.values())
        by_offset = {p.offset: p.data for p in received}
        assert {i: by_offset.get(result["offset"]) for i, result in acked.items()} == {
            i: i for i in acked
        }
        # A client that comes back from a position taken before the kill recovers it all.
        again = await HubClient.open(a.port)
        since = {"epoch": epoch, "offset": 1}
        reply = await again.result("subscribe", {"channel": "stream:aof", "since": since})
        assert reply["recovered"] is True and reply["epoch"] == epoch
        assert [p["data"] for p in reply["publications"]] == data[1:]
        await again.close()
        await client.close()
