"""The Redis broker: one server, client-side shards over several, a Redis Cluster, or
the master that Sentinel names; over TLS or not."""

from fastws.hub.broker.redis.broker import RedisBroker
from fastws.hub.broker.redis.tls import RedisTLS

__all__ = ["RedisBroker", "RedisTLS"]
