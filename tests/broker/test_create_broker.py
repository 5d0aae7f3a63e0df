"""create_broker: the one place a process's broker is chosen, by scheme and role."""

from __future__ import annotations

import socket

import pytest

from fastws.hub.broker import create_broker
from fastws.hub.broker.local import LocalBroker
from fastws.hub.broker.memory import MemoryBroker
from fastws.hub.broker.nats import NatsBroker
from fastws.hub.broker.redis import RedisBroker, RedisTLS
from fastws.hub.broker.redis.cluster import ClusterShard
from fastws.hub.broker.redis.sentinel import SentinelShard
from fastws.hub.config import ConfigError, HubConfig

TWO_SHARDS = "redis://127.0.0.1:7001/2, redis://:secret@127.0.0.1:7002"


def test_memory_is_kept_by_a_single_process_or_the_master_and_reached_by_workers() -> None:
    config = HubConfig(broker="memory://", history_meta_ttl=30.0)
    for role in ("single", "master"):
        broker = create_broker(config, role)
        assert type(broker) is MemoryBroker and broker.history_meta_ttl == 30.0
    ours, theirs = socket.socketpair()
    try:
        lost = []
        broker = create_broker(
            config, "worker", master_link=ours, on_master_lost=lambda: lost.append(1)
        )
        assert type(broker) is LocalBroker and broker.sock is ours
        broker.on_lost()
        assert lost == [1]
    finally:
        ours.close()
        theirs.close()
    with pytest.raises(ValueError, match="link to its master"):
        create_broker(config, "worker")


def test_redis_is_reached_by_every_serving_process_and_not_by_the_master() -> None:
    config = HubConfig(
        broker=TWO_SHARDS, broker_timeout=0.5, presence_ttl=12.0, local_delivery_on_outage=True
    )
    assert create_broker(config, "master") is None
    for role in ("single", "worker"):
        broker = create_broker(config, role)
        assert type(broker) is RedisBroker
        assert [shard.name for shard in broker.shards] == ["127.0.0.1:7001/2", "127.0.0.1:7002/0"]
        assert broker.shards[1].password == "secret"
        assert (broker.timeout, broker.presence_ttl) == (0.5, 12.0)
        assert broker.local_delivery_on_outage
        assert len(broker.breakers()) == 2 and broker.sizes() is None


def test_nats_is_reached_by_every_serving_process_from_one_cluster_list() -> None:
    config = HubConfig(broker="nats://127.0.0.1:4222,10.0.0.2:4222, nats://u:p@10.0.0.3")
    assert create_broker(config, "master") is None
    for role in ("single", "worker"):
        broker = create_broker(config, role)
        assert type(broker) is NatsBroker and broker.replicas == 3
        assert broker.servers == [
            "nats://127.0.0.1:4222", "nats://10.0.0.2:4222", "nats://u:p@10.0.0.3"
        ]  # fmt: skip
        assert len(broker.breakers()) == 1 and broker.sizes() is None
    assert create_broker(HubConfig(broker="nats://127.0.0.1"), "single").replicas == 1


@pytest.mark.parametrize(
    ("broker", "local_delivery", "error"),
    [
        ("nats://127.0.0.1:4222", True, "local_delivery_on_outage: not offered by the NATS"),
        ("nats://127.0.0.1:4222/0", False, "a NATS URL names no database"),
        ("nats://127.0.0.1,redis://127.0.0.1", False, "cannot be combined"),
        ("redis://127.0.0.1,nats://127.0.0.1", False, "cannot be combined"),
    ],
)
def test_nats_configurations_the_broker_cannot_serve_are_refused(
    broker: str, local_delivery: bool, error: str
) -> None:
    with pytest.raises(ConfigError, match=error):
        HubConfig(broker=broker, local_delivery_on_outage=local_delivery).validate()


def test_an_unsupported_url_names_the_supported_schemes() -> None:
    with pytest.raises(ConfigError, match="supported schemes: memory://, redis://.*, nats://"):
        create_broker(HubConfig(broker="kafka://127.0.0.1:9092"))


def test_a_cluster_and_sentinel_are_one_shard_each_with_their_hosts() -> None:
    cluster = create_broker(HubConfig(broker="redis+cluster://:pw@127.0.0.1:7001, 127.0.0.1:7002"))
    (shard,) = cluster.shards
    assert type(shard) is ClusterShard and shard.tls is None
    assert shard.seeds == [("127.0.0.1", 7001), ("127.0.0.1", 7002)] and shard.password == "pw"
    sentinel = create_broker(HubConfig(broker="redis+sentinel://10.0.0.1,10.0.0.2:5000/main"))
    (shard,) = sentinel.shards
    assert type(shard) is SentinelShard and shard.master == "main"
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
            for s in shard.sentinel.sentinels] == [("10.0.0.1", 26379), ("10.0.0.2", 5000)]


def test_tls_options_reach_rediss_shards_and_need_a_rediss_url(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    config = HubConfig(broker="redis://h2,rediss://h1", broker_tls_ca=str(ca), insecure=True)
    config.validate()
    broker = create_broker(config)
    assert broker.shards[1].tls == RedisTLS(str(ca), None, None, True)
    assert broker.shards[0].tls is None
    for bad, message in [
        ({"broker": "redis://h", "broker_tls_ca": str(ca)}, "needs a rediss"),
        ({"broker": "rediss://h", "broker_tls_key": str(ca)}, "needs broker_tls_cert"),
        ({"broker": "rediss://h", "broker_tls_cert": str(tmp_path / "no")}, "no such file"),
        ({"broker": "redis+sentinel://h:1"}, "name the master"),
        ({"broker": "redis+cluster://h:1/2"}, "no database"),
        ({"broker": "redis://a,redis+cluster://b"}, "cannot be combined"),
        ({"broker": "redis+cluster://a:1,a:1"}, "listed twice"),
    ]:
        with pytest.raises(ConfigError, match=message):
            HubConfig(insecure=True, **bad).validate()
