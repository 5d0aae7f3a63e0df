"""create_broker: the one place a process's broker is chosen, by scheme and role."""

from __future__ import annotations

import socket

import pytest

from fastws.hub.broker import create_broker
from fastws.hub.broker.local import LocalBroker
from fastws.hub.broker.memory import MemoryBroker
from fastws.hub.broker.redis import RedisBroker
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


def test_an_unsupported_url_names_the_supported_schemes() -> None:
    with pytest.raises(ConfigError, match="supported schemes: memory://, redis://"):
        create_broker(HubConfig(broker="nats://127.0.0.1:4222"))
