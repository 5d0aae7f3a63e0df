"""Brokers: how hub nodes share channels, history, presence and users.

``base`` holds the interface and its data types; ``memory`` serves one process,
``local`` carries the memory broker to the workers of one machine, ``redis``
serves a cluster of nodes. ``create_broker`` is the one place a broker is
chosen from configuration.
"""

from __future__ import annotations

from fastws.hub.broker.base import (
    Broker,
    BrokerSink,
    BrokerUnavailable,
    ClientInfo,
    HistoryResult,
    Publication,
    PublishOptions,
    StreamPosition,
)
from fastws.hub.config import BROKER_SCHEMES, ConfigError, HubConfig


def create_broker(config: HubConfig) -> Broker:
    """The broker named by ``config.broker`` (a URL whose scheme picks the kind)."""
    scheme = config.broker.partition("://")[0]
    if scheme == "memory":
        from fastws.hub.broker.memory import MemoryBroker

        return MemoryBroker(history_meta_ttl=config.history_meta_ttl)
    if scheme == "redis":
        from fastws.hub.broker.redis import RedisBroker

        return RedisBroker.from_config(config)
    supported = ", ".join(f"{s}://" for s in BROKER_SCHEMES)
    raise ConfigError(f"broker: {config.broker!r} is not supported; supported schemes: {supported}")


__all__ = [
    "Broker",
    "BrokerSink",
    "BrokerUnavailable",
    "ClientInfo",
    "HistoryResult",
    "Publication",
    "PublishOptions",
    "StreamPosition",
    "create_broker",
]
