"""The Redis broker: one server, or client-side shards over several."""

from fastws.hub.broker.redis.broker import RedisBroker

__all__ = ["RedisBroker"]
