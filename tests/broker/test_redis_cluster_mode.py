"""The Redis broker on a real Redis Cluster (three masters, a replica each): the broker
contract with sharded and with classic pub/sub, hub nodes sharing channels through it,
a slot moved under load, a master killed under load."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

import fastws.hub.broker.redis.scripts as rs
from fastws.hub.broker import ClientInfo, PublishOptions, StreamPosition
from fastws.hub.broker.redis import RedisBroker
from fastws.hub.client import Client
from tests.broker.test_redis_faults import publish, steady_load
from tests.support.brokers import (
    Sink,
    check_binary_data,
    check_reverse_history,
    check_server_api_support,
)
from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess, dev_token, hub_nodes
from tests.support.loops import run_async
from tests.support.polling import until
from tests.support.redis_cluster import NODE_TIMEOUT_MS, LocalRedisCluster

FAST_RETRY = ("--broker-cooldown", "0.2", "--broker-cooldown-max", "0.5")
HISTORY = PublishOptions(history_size=100, history_ttl=60)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRedisCluster]:
    """One cluster for the tests that leave it as they found it."""
    made = LocalRedisCluster()
    try:
        yield made.start()
    finally:
        made.cleanup()


@pytest.fixture
def own_cluster() -> Iterator[LocalRedisCluster]:
    """A cluster for a test that kills one of its masters."""
    made = LocalRedisCluster()
    try:
        yield made.start()
    finally:
        made.cleanup()


def pubs(sink: Sink) -> list[tuple]:
    return [event for event in sink.events if event[0] == "pub"]


def slot_of(channel: str) -> int:
    return key_slot(rs.meta_key(channel).encode())


def channel_in_slot(slot: int, prefix: str) -> str:
    """A channel name whose keys hash to ``slot`` (found by counting; 16384 slots)."""
    for i in range(1_000_000):
        name = f"{prefix}{i}"
        if slot_of(name) == slot:
            return name
    raise AssertionError(f"no channel name for slot {slot}")


@pytest.mark.parametrize("pubsub", ["sharded", "classic"])
@run_async(loops=("uvloop",), timeout=60)
async def test_the_broker_contract_holds_on_a_cluster(cluster: LocalRedisCluster, pubsub) -> None:
    brokers = [RedisBroker([cluster.url()], cooldown=0.1, cluster_pubsub=pubsub) for _ in "ab"]
    sinks = [Sink(), Sink()]
    for broker, sink in zip(brokers, sinks, strict=True):
        await broker.start(sink)
    a, b = brokers
    assert a.status()["shards"][0]["pubsub"] == pubsub
    # Channels on every master: each one's stream lives whole in its slot.
    channels = [f"{pubsub}:spread:{i}" for i in range(12)]
    assert len({cluster.master_of(rs.meta_key(c)).port for c in channels}) == 3
    for channel in channels:
        await b.subscribe(channel)
    for i, channel in enumerate(channels):
        assert await a.publish(channel, b"%d" % i, "u", HISTORY) == StreamPosition(
            1, (await a.history(channel, None, 0)).position.epoch
        )
    await until(lambda: len(pubs(sinks[1])) == len(channels), "a publication per channel")
    assert sorted(pubs(sinks[1])) == sorted(("pub", c, 1, b"%d" % i) for i, c in enumerate(channels))
    first = await a.history(channels[0], None, None)
    assert [(p.offset, p.data, p.user) for p in first.publications] == [(1, b"0", "u")]
    # Presence, users and the checks every broker passes.
    info = ClientInfo("c1", "bob", b'{"x":1}')
    await a.add_presence(channels[1], info)
    assert await b.presence(channels[1]) == {"c1": info}
    await b.publish_join(channels[1], info)
    await until(lambda: ("join", channels[1], "c1") in sinks[1].events, "the join")
    await a.remove_presence(channels[1], "c1")
    assert await b.presence(channels[1]) == {}
    await check_reverse_history(a, f"{pubsub}:reverse")
    sinks[1].events.clear()  # the check counts what arrives from now on
    await check_binary_data(b, sinks[1], f"{pubsub}:binary")
    await check_server_api_support(a, sinks, f"{pubsub}:api")
    for broker in brokers:
        await broker.close()


@run_async(loops=("uvloop",), timeout=120)
async def test_hub_nodes_share_channels_through_the_cluster(cluster: LocalRedisCluster) -> None:
    async with hub_nodes(cluster.url(), 2) as (a, b):
        alice = await HubClient.open(a.port, token=await dev_token(a.port, "alice"))
        bob = await HubClient.open(b.port, token=await dev_token(b.port, "bob"))
        reply = await alice.result("subscribe", {"channel": "room:cluster"})
        await bob.result("subscribe", {"channel": "room:cluster"})
        joins = await alice.pushes_of("join", 2)
        assert {j["info"]["user"] for j in joins} == {"alice", "bob"}
        for i in range(10):
            await bob.result("publish", {"channel": "room:cluster", "data": i})
        for client in (alice, bob):
            pushes = await client.pushes_of("pub", 10)
            assert [p["offset"] for p in pushes] == list(range(1, 11))
        presence = await bob.result("presence", {"channel": "room:cluster"})
        assert set(presence["clients"]) == {alice.client_id, bob.client_id}
        await alice.result("send", {"user": "bob", "data": "psst"})
        (message,) = await bob.pushes_of("message", 1)
        assert message["data"] == "psst"
        # Alice leaves node A, misses five, and recovers them through node B.
        await alice.close()
        for i in range(10, 15):
            assert (await publish(a, "room:cluster", i))[0] == 200
        back = await HubClient.open(b.port, token=await dev_token(b.port, "alice"))
        since = {"epoch": reply["epoch"], "offset": 10}
        again = await back.result("subscribe", {"channel": "room:cluster", "since": since})
        assert again["recovered"] is True
        assert [p["data"] for p in again["publications"]] == list(range(10, 15))
        for client in (back, bob):
            await client.close()


class Watcher:
    """A hub client subscribed to one channel: what it received, per epoch, and whether
    each resync recovered."""

    def __init__(self, node: HubProcess, channel: str) -> None:
        self.client = Client(
            f"ws://127.0.0.1:{node.port}/connection", backoff_base=0.05, backoff_max=0.5
        )
        self.node_name = f"port {node.port}"
        self.channel = channel
        self.received: list[tuple[str, object]] = []  # (epoch, publication)
        self.resyncs: list[bool | None] = []

    async def start(self) -> Watcher:
        await self.client.connect()
        self.sub = await self.client.subscribe(
            self.channel,
            on_publication=lambda p: self.received.append((self.sub.epoch, p)),
            on_resync=lambda s: self.resyncs.append(s.recovered),
        )
        self.first_epoch = self.sub.epoch
        return self

    def check(self, acks: list) -> None:
        """Never a silent gap: within each epoch, offsets follow each other exactly once;
        a new epoch comes only with a resync that says it did not recover; every
        publication acknowledged in an epoch since the watcher was in it reached it."""
        epochs = list(dict.fromkeys(epoch for epoch, _ in self.received))
        assert len(epochs) == 1 + self.resyncs.count(False), (epochs, self.resyncs)
        assert self.client.reconnects == 0
        for epoch in epochs:
            mine = [p for e, p in self.received if e == epoch]
            offsets = [p.offset for p in mine]
            assert offsets == list(range(offsets[0], offsets[-1] + 1)), (epoch, offsets)
            acked = {
                reply["result"]["offset"]: i
                for i, (status, reply) in acks
                if status == 200 and reply["result"]["epoch"] == epoch
            }
            seen = {p.offset: p.data for p in mine}
            wanted = {o: i for o, i in acked.items() if offsets[0] <= o <= offsets[-1]}
            assert {o: seen.get(o) for o in wanted} == wanted

    def describe(self) -> str:
        """What it received, per epoch, for a failure message."""
        epochs = list(dict.fromkeys(epoch for epoch, _ in self.received))
        offsets = {e: [p.offset for f, p in self.received if f == e] for e in epochs}
        return f"offsets per epoch {offsets}, resyncs {self.resyncs}, data tail " + str(
            [p.data for _, p in self.received[-5:]]
        )

    async def close(self) -> None:
        await self.client.close()


async def under_load(
    node: HubProcess,
    channel: str,
    watchers: list[Watcher],
    fault,
    settled=lambda: True,
) -> tuple[list, float]:
    """Publish through ``node`` while ``fault()`` (blocking) runs in a thread: the acks,
    and the seconds from the fault to the first publication acknowledged after it.

    The load goes on until ``settled()`` and then for 20 more publications, so every
    watcher, however late its node came back, receives the last one: a watcher told
    ``recovered: false`` starts from where it subscribed again, not before."""
    acks: list = []
    stop = asyncio.Event()
    load = asyncio.create_task(steady_load(node, channel, acks, stop))
    try:
        await until(lambda: all(len(w.received) >= 20 for w in watchers), "a steady flow", 30)
        started = time.monotonic()
        count = len(acks)
        await asyncio.to_thread(fault)

        def acknowledged() -> int:  # (the publication in flight at the fault may go either way)
            return sum(status == 200 for _, (status, _) in acks[count + 1 :])

        await until(acknowledged, "a publication acknowledged after the fault", 60, 0.005)
        outage = time.monotonic() - started
        await until(settled, "the watchers back on the stream", 60)
        count = len(acks)
        await until(lambda: acknowledged() >= 20, "publications acknowledged after it", 60)
    finally:
        stop.set()
        await load
    last = max(i for i, (status, _) in acks if status == 200)
    for watcher in watchers:
        await until(
            lambda w=watcher: any(p.data == last for _, p in w.received),
            lambda w=watcher: f"the last publication ({last}) at {w.node_name}: {w.describe()}",
            timeout=30,
        )
    return acks, outage


@run_async(loops=("uvloop",), timeout=180)
async def test_a_slot_moved_under_load_loses_nothing(cluster: LocalRedisCluster) -> None:
    """``redis-cli --cluster reshard`` moves the channel's slot to another master while a
    node publishes to it: the subscribers follow it and see every publication once."""
    source = cluster.master_of("{x}")  # any master; its first slot carries the channel
    first_slot = min(s for s in cluster.slots(source))
    channel = channel_in_slot(first_slot, "stream:moving:")
    target = next(m for m in cluster.masters() if m is not source)
    async with hub_nodes(cluster.url(), 2, *FAST_RETRY) as (a, b):
        watchers = [await Watcher(node, channel).start() for node in (a, b)]

        def reshard() -> None:
            cluster.run_cli(
                "--cluster", "reshard", f"127.0.0.1:{source.port}",
                "--cluster-from", cluster.node_id(source),
                "--cluster-to", cluster.node_id(target),
                "--cluster-slots", "16", "--cluster-yes",
            )

        acks, _ = await under_load(a, channel, watchers, reshard)
        assert cluster.master_of(rs.meta_key(channel)) is target
        for watcher in watchers:
            watcher.check(acks)
            assert watcher.resyncs == []  # the same stream on its new master
            await watcher.close()


@run_async(loops=("uvloop",), timeout=180)
async def test_a_master_killed_under_load(own_cluster: LocalRedisCluster) -> None:
    """The channel's master dies while a node publishes to it: its replica takes over,
    the hub nodes follow, and the subscribers are told of the new stream (a failover may
    lose the latest writes) without ever missing a publication silently."""
    cluster = own_cluster
    channel = "stream:failover"
    async with hub_nodes(cluster.url(), 2, *FAST_RETRY) as (a, b):
        watchers = [await Watcher(node, channel).start() for node in (a, b)]
        victim = cluster.master_of(rs.meta_key(channel))
        acks, outage = await under_load(
            a, channel, watchers, victim.kill, lambda: all(w.resyncs for w in watchers)
        )
        print(f"publications failed for {outage:.2f} s after the master was killed")
        assert cluster.master_of(rs.meta_key(channel)) is not victim
        assert any(status == 503 for _, (status, _) in acks)
        assert outage < 10 * NODE_TIMEOUT_MS / 1000  # detection, election, a probe
        for watcher in watchers:
            watcher.check(acks)
            assert watcher.resyncs == [False]
            await watcher.close()
        for node in (a, b):
            status = await node.broker_status()
            assert status["circuit"] == "closed" and status["trips"] >= 1
