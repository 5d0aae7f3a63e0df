"""Far more Redis calls at once than a server's pooled connections: they queue for a
connection, every one is answered, and the circuit stays closed; a queue that stays
full past its bound answers "overloaded" without counting against Redis.

Redis sits behind a delaying proxy, so that each round trip costs a known least time
and the queue for the pooled connections grows far past ``broker_timeout``.
"""

from __future__ import annotations

import asyncio

from fastws.hub.broker import BrokerUnavailable, ClientInfo, PublishOptions
from fastws.hub.broker.base import BrokerOverloaded
from fastws.hub.broker.circuit import CLOSED
from fastws.hub.broker.redis import RedisBroker
from fastws.hub.broker.redis.shard import POOL_SIZE
from fastws.hub.broker.redis.slots import CommandSlots
from fastws.hub.metrics import broker_samples
from tests.support.brokers import Sink
from tests.support.delayproxy import DelayProxy
from tests.support.hub import HubClient
from tests.support.hubprocess import hub_nodes
from tests.support.loops import run_async
from tests.support.polling import until
from tests.support.redis import RedisServer

DELAY = 0.02  # each way: a round trip takes at least 0.04 s
BROKER_TIMEOUT = 0.5  # the per-command timeout: a dozen round trips (a new connection takes a few)
BURST = 10 * POOL_SIZE  # of each kind of call: 40 round trips of the pool, 3 timeouts long
HISTORY = PublishOptions(history_size=BURST, history_ttl=60)


async def slow_broker(redis: RedisServer, proxy: DelayProxy, **options) -> RedisBroker:
    broker = RedisBroker(
        [f"redis://127.0.0.1:{proxy.port}/0"], timeout=BROKER_TIMEOUT, cooldown=0.1, **options
    )
    await broker.start(Sink())
    await until(lambda: broker.healthy, lambda: f"the broker up: {broker.status()}")
    return broker


def burst(broker: RedisBroker) -> list:
    """Subscribes, publishes, history reads and presence calls, all at once."""
    calls = []
    for i in range(BURST):
        channel = f"room:{i % 10}"
        calls.append(broker.subscribe(f"topic:{i}"))
        calls.append(broker.publish(channel, b"%d" % i, None, HISTORY))
        calls.append(broker.history(channel, None, 0))
        calls.append(broker.add_presence(channel, ClientInfo(f"client-{i}", "user", None)))
    return calls


@run_async()
async def test_slots_queue_in_order_and_turn_away_past_either_bound() -> None:
    slots = CommandSlots(lambda: "redis here", 1, 60.0, 2)
    order: list[int] = []
    release = asyncio.Event()

    async def call(i: int) -> None:
        async with slots:
            order.append(i)
            await release.wait()

    first = asyncio.create_task(call(0))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(call(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    assert slots.status() == {"in_flight": 1, "waiting": 2, "overloaded": 0}
    try:
        async with slots:  # a third in the queue: past its length, at once
            raise AssertionError("a slot past the queue's length")
    except BrokerOverloaded as exc:
        assert str(exc) == (
            "redis here overloaded: 2 calls already wait for a connection (1 in flight, 2 waiting)"
        )
    release.set()
    await asyncio.gather(first, *queued)
    assert order == [0, 1, 2]
    assert slots.status() == {"in_flight": 0, "waiting": 0, "overloaded": 1}

    hurried = CommandSlots(lambda: "redis here", 1, 0.01, 10)
    release.clear()
    holder = asyncio.create_task(call_in(hurried, release))
    await asyncio.sleep(0)
    try:
        async with hurried:  # past the queue's time
            raise AssertionError("a slot while the only one is held")
    except BrokerOverloaded as exc:
        assert "no connection free within 0.01 s" in str(exc)
    release.set()
    await holder
    assert hurried.status() == {"in_flight": 0, "waiting": 0, "overloaded": 1}
    async with hurried:  # free again
        assert hurried.in_flight == 1


async def call_in(slots: CommandSlots, release: asyncio.Event) -> None:
    async with slots:
        await release.wait()


@run_async(timeout=120)
async def test_a_burst_far_past_the_pool_queues_and_every_call_succeeds(
    redis_server: RedisServer,
) -> None:
    async with DelayProxy(("127.0.0.1", redis_server.port), DELAY) as proxy:
        broker = await slow_broker(redis_server, proxy)
        try:
            results = await asyncio.gather(*burst(broker), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            assert failed == [], f"{len(failed)} of {len(results)} failed: {failed[:3]}"
            status = broker.status()
            assert (status["circuit"], status["trips"], status["failures"]) == (CLOSED, 0, 0)
            # Nothing was lost or duplicated on the way: offsets 1..N in each channel.
            for i in range(10):
                history = await broker.history(f"room:{i}", None, None)
                offsets = [p.offset for p in history.publications]
                assert offsets == list(range(1, BURST // 10 + 1))
            presence = await broker.presence("room:0")
            assert len(presence) == BURST // 10
        finally:
            await broker.close()


@run_async(timeout=120)
async def test_a_queue_full_past_its_bound_answers_overloaded_and_redis_is_not_blamed(
    redis_server: RedisServer,
) -> None:
    async with DelayProxy(("127.0.0.1", redis_server.port), DELAY) as proxy:
        broker = await slow_broker(redis_server, proxy, queue_timeout=BROKER_TIMEOUT)
        try:
            results = await asyncio.gather(*burst(broker), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            # Every call the queue let through was answered; the rest were turned away.
            assert failed, "the burst fitted within the queue's bound"
            assert len(failed) < len(results)
            assert all(isinstance(r, BrokerOverloaded) for r in failed), failed[:3]
            assert all(isinstance(r, BrokerUnavailable) for r in failed)  # 503, try again
            assert "overloaded" in str(failed[0])
            status = broker.status()
            assert (status["circuit"], status["trips"], status["failures"]) == (CLOSED, 0, 0)
            (shard,) = status["shards"]
            # Counted too: the occupancy updates turned away inside subscribes that succeeded.
            assert shard["overloaded"] >= len(failed)
            samples = {name: value for name, _, value in broker_samples(broker, "0")}
            assert samples["fastws_broker_overloaded_total"] == shard["overloaded"]
            assert samples["fastws_broker_up"] == 1
            assert broker.healthy
            await broker.publish("room:0", b"after", None, HISTORY)
        finally:
            await broker.close()
        slots = broker.shards[0].slots
        assert (slots.in_flight, slots.waiting) == (0, 0)  # every slot given back


@run_async(loops=("uvloop",), timeout=180)
async def test_clients_subscribing_at_once_all_get_their_replies(
    redis_server: RedisServer,
) -> None:
    """A hub process whose Redis answers slowly. Each client subscribes to two channels
    at once: each subscribe reads the channel's position, a presence channel's then adds
    the client's presence and publishes its join; the first burst alone is 25 round
    trips of the pool, twice the timeout."""
    clients_count = 400
    async with DelayProxy(("127.0.0.1", redis_server.port), DELAY) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        async with hub_nodes(url, 1, "--broker-timeout", str(BROKER_TIMEOUT)) as (node,):
            await node.wait_ready()
            clients = await asyncio.gather(*(HubClient.open(node.port) for _ in range(clients_count)))
            try:

                async def subscribe_twice(client: HubClient, i: int) -> list[dict]:
                    sent = [
                        client.send_command("subscribe", {"channel": f"{kind}:{i % 10}"})
                        for kind in ("room", "stream")
                    ]
                    return [await client.reply(command_id) for command_id in sent]

                answers = await asyncio.gather(
                    *(subscribe_twice(client, i) for i, client in enumerate(clients))
                )
                replies = [reply for pair in answers for reply in pair]
                errors = [reply["error"] for reply in replies if "error" in reply]
                assert errors == [], f"{len(errors)} of {len(replies)} failed: {errors[:3]}"
                status = await node.broker_status()
                assert (status["circuit"], status["trips"]) == (CLOSED, 0), status
            finally:
                await asyncio.gather(*(client.close() for client in clients))
