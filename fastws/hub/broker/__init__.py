"""Brokers: how hub nodes share channels, history, presence and users.

``base`` holds the interface and its data types; ``memory`` serves one process,
``local`` carries the memory broker to the workers of one machine, ``redis``
and ``nats`` serve a cluster of nodes, ``circuit`` guards a broker's servers.
``create_broker`` is the one place a broker is chosen.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Literal

from fastws.hub.broker.base import (
    Broker,
    BrokerOverloaded,
    BrokerSink,
    BrokerSizes,
    BrokerUnavailable,
    ClientInfo,
    HistoryResult,
    Publication,
    PublishOptions,
    StreamPosition,
)
from fastws.hub.broker.local import LocalBroker
from fastws.hub.broker.memory import MemoryBroker
from fastws.hub.config import ConfigError, HubConfig, broker_urls

Role = Literal["single", "master", "worker"]


def create_broker(
    config: HubConfig,
    role: Role = "single",
    *,
    master_link: socket.socket | None = None,
    on_master_lost: Callable[[], None] | None = None,
) -> Broker | None:
    """The broker of a process in ``role``, from ``config.broker`` (its scheme picks the kind).

    ========  ===========================================  ===================
    role      memory://                                    redis... (any)
    ========  ===========================================  ===================
    single    a ``MemoryBroker``                           a ``RedisBroker``
    master    the ``MemoryBroker`` the workers share       None: workers
              (served by ``local.BrokerHost``)             connect themselves
    worker    a ``LocalBroker`` over ``master_link``;      a ``RedisBroker``
              ``on_master_lost`` when that link ends
    ========  ===========================================  ===================

    nats:// is chosen as redis:// is, with a ``NatsBroker``.
    """
    urls = broker_urls(config.broker)  # ConfigError for a URL that is not supported
    scheme = urls[0].scheme
    if scheme == "memory":
        if role == "worker":
            if master_link is None:
                raise ValueError("a worker needs the link to its master's memory broker")
            return LocalBroker(master_link, on_lost=on_master_lost)
        return MemoryBroker(history_meta_ttl=config.history_meta_ttl)
    if scheme.startswith(("redis", "rediss")):
        if role == "master":
            return None
        from fastws.hub.broker.redis import RedisBroker, RedisTLS  # on demand: slow to import

        return RedisBroker(
            [url.geturl() for url in urls],
            tls=RedisTLS(
                config.broker_tls_ca,
                config.broker_tls_cert,
                config.broker_tls_key,
                config.broker_tls_check_hostname,
            ),
            timeout=config.broker_timeout,
            queue_timeout=config.broker_queue_timeout,
            failure_threshold=config.broker_failure_threshold,
            cooldown=config.broker_cooldown,
            cooldown_max=config.broker_cooldown_max,
            presence_ttl=config.presence_ttl,
            node_ttl=config.node_ttl,
            history_meta_ttl=config.history_meta_ttl,
            local_delivery_on_outage=config.local_delivery_on_outage,
        )
    if scheme == "nats":
        if role == "master":
            return None
        try:  # on demand: nats-py is an optional dependency
            from fastws.hub.broker.nats import NatsBroker
        except ImportError as exc:
            raise ConfigError(
                f"broker: nats:// needs nats-py ({exc}); pip install 'fastws[nats]'"
            ) from None

        return NatsBroker(
            [url.geturl() for url in urls],
            timeout=config.broker_timeout,
            failure_threshold=config.broker_failure_threshold,
            cooldown=config.broker_cooldown,
            cooldown_max=config.broker_cooldown_max,
            presence_ttl=config.presence_ttl,
        )
    raise ConfigError(f"broker: no broker implements {scheme}://")


__all__ = [
    "Broker",
    "BrokerOverloaded",
    "BrokerSink",
    "BrokerSizes",
    "BrokerUnavailable",
    "ClientInfo",
    "HistoryResult",
    "Publication",
    "PublishOptions",
    "StreamPosition",
    "create_broker",
]
