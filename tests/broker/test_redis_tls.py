"""TLS to Redis (``rediss://``): redis-server with ``--tls-port``, certificates made by
the test, clients required to show one of theirs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import fastws.hub.broker.redis.scripts as rs
from fastws.hub.broker import ClientInfo, PublishOptions
from fastws.hub.broker.redis import RedisBroker, RedisTLS
from tests.support.brokers import Sink, check_binary_data
from tests.support.certs import TestCA
from tests.support.hub import HubClient
from tests.support.hubprocess import hub_nodes
from tests.support.loops import run_async
from tests.support.net import free_port
from tests.support.polling import until
from tests.support.redis import RedisServer
from tests.support.redis_cluster import LocalRedisCluster, LocalSentinels

HISTORY = PublishOptions(history_size=10, history_ttl=60)


class TLSSetup:
    """A CA, a client certificate, and ``start()`` for Redis servers that require TLS
    (with a certificate for 127.0.0.1 only) on their ``tls_port``."""

    def __init__(self, folder: Path, make_redis: Callable[..., RedisServer]) -> None:
        self.ca = TestCA(folder)
        self.server_cert, self.server_key = self.ca.issue("redis", ("127.0.0.1",))
        self.client_cert, self.client_key = self.ca.issue("hub")
        self.make_redis = make_redis
        self.tls = RedisTLS(str(self.ca.file), self.client_cert, self.client_key)

    def start(self) -> int:
        tls_port = free_port()
        self.make_redis(
            True,
            None,
            "--tls-port", str(tls_port),
            "--tls-cert-file", self.server_cert,
            "--tls-key-file", self.server_key,
            "--tls-ca-cert-file", str(self.ca.file),
            "--tls-auth-clients", "yes",
        )
        return tls_port


@pytest.fixture
def tls_setup(tmp_path: Path, make_redis) -> TLSSetup:
    return TLSSetup(tmp_path, make_redis)


async def started(urls: list[str], tls: RedisTLS) -> tuple[RedisBroker, Sink]:
    broker = RedisBroker(urls, tls=tls, cooldown=0.1, cooldown_max=0.2, timeout=1.0)
    sink = Sink()
    await broker.start(sink)
    return broker, sink


@run_async(loops=("uvloop",), timeout=60)
async def test_shards_over_tls_carry_everything(tls_setup: TLSSetup) -> None:
    ports = [tls_setup.start(), tls_setup.start()]
    broker, sink = await started([f"rediss://127.0.0.1:{p}" for p in ports], tls_setup.tls)
    assert broker.healthy, broker.status()
    channels = [f"tls:{i}" for i in range(6)]
    assert {broker.shard(c) for c in channels} == set(broker.shards)  # both servers used
    for channel in channels:
        await broker.subscribe(channel)
        await broker.publish(channel, b"1", None, HISTORY)
    await until(lambda: len([e for e in sink.events if e[0] == "pub"]) == 6, "publications")
    await broker.add_presence(channels[0], ClientInfo("c", "u", None))
    assert list(await broker.presence(channels[0])) == ["c"]
    sink.events.clear()
    await check_binary_data(broker, sink, "tls:binary")
    await broker.close()


@run_async(loops=("uvloop",), timeout=60)
async def test_certificates_are_checked_both_ways(tls_setup: TLSSetup, tmp_path: Path) -> None:
    port = tls_setup.start()
    other_ca = TestCA(tmp_path, "another CA")
    cert, key = tls_setup.client_cert, tls_setup.client_key
    ours = str(tls_setup.ca.file)
    refused = [  # (URL, TLS settings, what the shard's error says); the second has no client cert
        (f"rediss://127.0.0.1:{port}", RedisTLS(str(other_ca.file), cert, key), "verify failed"),
        (f"rediss://127.0.0.1:{port}", RedisTLS(ours), "certificate required|closed by"),
        (f"rediss://localhost:{port}", tls_setup.tls, "Hostname mismatch"),
        (f"redis://127.0.0.1:{port}", tls_setup.tls, ""),  # plain Redis protocol on a TLS port
    ]
    for url, tls, why in refused:
        broker, _ = await started([url], tls)
        assert not broker.healthy, url
        assert re.search(why, broker.status()["shards"][0]["error"]), why
        await broker.close()
    # The host name check can be turned off (the chain is still checked).
    unchecked = RedisTLS(str(tls_setup.ca.file), cert, key, check_hostname=False)
    broker, _ = await started([f"rediss://localhost:{port}"], unchecked)
    assert broker.healthy, broker.status()
    await broker.close()


@run_async(loops=("uvloop",), timeout=90)
async def test_hub_nodes_over_tls_from_the_command_line(tls_setup: TLSSetup) -> None:
    port = tls_setup.start()
    options = (
        "--broker-tls-ca", str(tls_setup.ca.file),
        "--broker-tls-cert", tls_setup.client_cert,
        "--broker-tls-key", tls_setup.client_key,
    )
    async with hub_nodes(f"rediss://127.0.0.1:{port}", 2, *options) as (a, b):
        watcher = await HubClient.open(b.port)
        await watcher.result("subscribe", {"channel": "stream:tls"})
        publisher = await HubClient.open(a.port)
        for i in range(5):
            await publisher.result("publish", {"channel": "stream:tls", "data": i})
        pushes = await watcher.pushes_of("pub", 5)
        assert [p["data"] for p in pushes] == list(range(5))
        for client in (watcher, publisher):
            await client.close()


@run_async(loops=("uvloop",), timeout=90)
async def test_a_cluster_over_tls(tls_setup: TLSSetup) -> None:
    files = (str(tls_setup.ca.file), tls_setup.server_cert, tls_setup.server_key)
    cluster = LocalRedisCluster(tls=files)
    try:
        await asyncio.to_thread(cluster.start)
        broker, sink = await started([cluster.url()], tls_setup.tls)
        assert broker.healthy, broker.status()
        assert broker.status()["shards"][0]["pubsub"] == "sharded"
        channels = [f"tls:cluster:{i}" for i in range(9)]
        assert len({cluster.master_of(rs.meta_key(c)).port for c in channels}) == 3
        for channel in channels:
            await broker.subscribe(channel)
            await broker.publish(channel, b"1", None, HISTORY)
        await until(lambda: len([e for e in sink.events if e[0] == "pub"]) == 9, "publications")
        await broker.close()
    finally:
        cluster.cleanup()


@run_async(loops=("uvloop",), timeout=90)
async def test_sentinels_and_their_master_over_tls(tls_setup: TLSSetup) -> None:
    files = (str(tls_setup.ca.file), tls_setup.server_cert, tls_setup.server_key)
    sentinels = LocalSentinels(tls=files)
    try:
        await asyncio.to_thread(sentinels.start)
        broker, sink = await started([sentinels.url()], tls_setup.tls)
        assert broker.healthy, broker.status()
        master = sentinels.port_of(sentinels.master)
        assert broker.status()["shards"][0]["address"] == f"fastws (127.0.0.1:{master})"
        await broker.subscribe("tls:sentinel")
        await broker.publish("tls:sentinel", b"1", None, HISTORY)
        await until(lambda: ("pub", "tls:sentinel", 1, b"1") in sink.events, "the publication")
        await broker.close()
    finally:
        sentinels.cleanup()
