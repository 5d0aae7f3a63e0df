"""A Redis master found through Sentinel: ``redis+sentinel://S1:26379,S2:26379/NAME``.

The shard behaves as one server's (``shard.py``); only where that server is
changes. Before every probe the sentinels are asked for the master of NAME,
and the shard's commands and pub/sub go there. So after a failover the old
master's connections fail (or answer READONLY once it is back as a replica),
the circuit opens, and the next probe finds the promoted replica: the hub is
back within the sentinels' failover time plus one cooldown.

The URL's TLS settings serve the sentinels and the master alike; its
credentials are the master's (the sentinels are asked without any).
"""

from __future__ import annotations

from redis.asyncio.sentinel import Sentinel

from fastws.hub.broker.circuit import CircuitBreaker
from fastws.hub.broker.redis.shard import QUEUE_TIMEOUT, Shard, ShardListener
from fastws.hub.broker.redis.tls import RedisTLS
from fastws.hub.config import broker_hosts, broker_urls


class SentinelShard(Shard):
    """The master that the sentinels name, followed across failovers."""

    def __init__(
        self,
        url: str,
        breaker: CircuitBreaker,
        timeout: float,
        listener: ShardListener,
        tls: RedisTLS | None = None,
        queue_timeout: float = QUEUE_TIMEOUT,
    ) -> None:
        super().__init__(url, breaker, timeout, listener, tls, queue_timeout)
        parsed = broker_urls(url)[0]
        self.master = parsed.path.strip("/")
        self.name = f"{self.master} (sentinel {self.host}:{self.port})"
        options = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            **({} if self.tls is None else {"ssl": True, **self.tls.connection_options()}),
        }
        self.sentinel = Sentinel(broker_hosts(parsed), sentinel_kwargs=options)
        self.address: tuple[str, int] | None = None

    async def locate(self) -> None:
        """Ask the sentinels for the master; when it moved, send everything there."""
        host, port = await self.sentinel.discover_master(self.master)
        if (host, port) != self.address:
            old = self.redis
            self.address = (host, port)
            self.host, self.port = host, port
            self.name = f"{self.master} ({host}:{port})"
            self.use(self.connect_to(host, port))
            await old.aclose()
        role = await self.redis.execute_command("ROLE")
        if role[0] != b"master":
            raise ConnectionError(f"{self.host}:{self.port} is not a master yet")

    async def close(self) -> None:
        await super().close()
        for sentinel in self.sentinel.sentinels:
            await sentinel.aclose()


__all__ = ["SentinelShard"]
