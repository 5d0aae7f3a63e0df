"""A Redis Cluster as one shard: ``redis+cluster://HOST:PORT,HOST:PORT`` (seed nodes).

Commands go through redis-py's cluster client, which sends each to the master
owning its keys' slot and follows redirections and failovers. Every key of a
channel carries the channel's hash tag, so the publish script (offset,
history and the message to subscribers) runs whole on one node.

Pub/sub is sharded where the servers have it (Redis 7): one connection per
master, each channel subscribed (SSUBSCRIBE) on the master owning its slot,
which alone relays the channel's messages. Without it, classic pub/sub on one
node: the cluster bus copies every PUBLISH to every node, so any node hears all
of them, at a cost that grows with the cluster rather than shrinking.

The cluster has one circuit breaker. A lost pub/sub connection (a master died)
opens it; each probe reads the topology again and closes it only once every
master answers, that is once a replica was promoted, then the channels resync
from history as after any reconnection. A slot that moves to another master
(resharding) is followed channel by channel: Redis unsubscribes the node from
the slot's channels, the node subscribes on the new owner and resyncs each of
them, holding what arrives meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from fastws.hub.broker.circuit import CircuitBreaker
from fastws.hub.broker.redis.pubsub import PubSubConnection, PubSubError
from fastws.hub.broker.redis.shard import POOL_SIZE, QUEUE_TIMEOUT, Shard, ShardListener
from fastws.hub.broker.redis.tls import RedisTLS
from fastws.hub.config import broker_hosts, broker_urls

logger = logging.getLogger("fastws.hub")

PUBSUB_MODES = ("auto", "sharded", "classic")
MOVED_ATTEMPTS = 5  # SSUBSCRIBE tries while the topology settles after a slot moved
SHARDED_SINCE = (7, 0)


class ClusterShard(Shard):
    """Every master of a Redis Cluster, behind one circuit breaker."""

    def __init__(
        self,
        url: str,
        breaker: CircuitBreaker,
        timeout: float,
        listener: ShardListener,
        tls: RedisTLS | None = None,
        queue_timeout: float = QUEUE_TIMEOUT,
        *,
        pubsub: str = "auto",
    ) -> None:
        if pubsub not in PUBSUB_MODES:
            raise ValueError(f"cluster pub/sub: {pubsub!r} is not one of {PUBSUB_MODES}")
        self.pubsub_mode = pubsub
        self.seeds = broker_hosts(broker_urls(url)[0])
        super().__init__(url, breaker, timeout, listener, tls, queue_timeout)
        self.name = "cluster " + ",".join(f"{host}:{port}" for host, port in self.seeds)
        self.sharded = pubsub == "sharded"
        self.use(self.redis)  # the publish script for the pub/sub chosen
        self.following: set[asyncio.Task] = set()

    def connect_to(self, host: str, port: int) -> Any:
        """The cluster client; it learns the topology from the seeds."""
        tls = {} if self.tls is None else {"ssl": True, **self.tls.connection_options()}
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.seeds],
            username=self.username,
            password=self.password,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            # Per node, while the shard's slots bound the calls of all nodes together: the
            # cluster client refuses a connection beyond this instead of waiting for one.
            max_connections=POOL_SIZE + 1,
            retry=Retry(NoBackoff(), 1),  # once more on the refreshed topology, then fail
            **tls,
        )

    async def locate(self) -> None:
        """Read the topology; every master must answer."""
        cluster = self.redis
        await cluster.initialize()
        await cluster.nodes_manager.initialize()
        await cluster.ping(target_nodes=RedisCluster.PRIMARIES)
        if self.pubsub_mode == "auto":
            info = await cluster.info("server", target_nodes=RedisCluster.PRIMARIES)
            versions = [
                tuple(int(part) for part in node["redis_version"].split(".")[:2])
                for node in info.values()
            ]
            sharded = min(versions) >= SHARDED_SINCE
            if sharded != self.sharded:
                self.sharded = sharded
                self.use(cluster)

    async def open_pubsub(self) -> Any:
        if self.sharded:
            return await ClusterPubSub.open(self)
        node = self.redis.get_random_node()  # any node hears every classic PUBLISH
        return await self.open_pubsub_to(node.host, node.port)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "pubsub": "sharded" if self.sharded else "classic"}

    async def _reset_pool(self) -> None:
        """Nothing: the cluster client drops the connections of failed nodes itself."""

    async def close(self) -> None:
        for task in list(self.following):
            task.cancel()
        await asyncio.gather(*self.following, return_exceptions=True)
        await super().close()

    # -- a slot moved ----------------------------------------------------------------

    def follow(self, name: bytes) -> None:
        """Redis unsubscribed ``name``: its slot has a new master; subscribe there, resync."""
        channel = self.channels.get(name)
        if channel is None and name != self.control:
            return
        if channel is not None:
            self.resyncing[channel] = []  # hold its publications until the resync
        task = asyncio.get_running_loop().create_task(self._follow(name, channel))
        self.following.add(task)
        task.add_done_callback(self.following.discard)

    async def _follow(self, name: bytes, channel: str | None) -> None:
        pubsub = self.pubsub
        if pubsub is None:
            return
        try:
            async with asyncio.timeout(self.timeout * 2):
                await pubsub.subscribe([name])[0]
        except (PubSubError, RedisError, OSError, TimeoutError) as exc:
            logger.warning("fastws hub: following %r to its new node failed: %s", name, exc)
            if self.pubsub is pubsub:
                self._on_pubsub_lost(pubsub, exc)  # a full reconnection then
            return
        if channel is None:
            return
        if self.channels.get(name) != channel:  # unsubscribed meanwhile
            pubsub.unsubscribe([name])
            return
        self.listener.on_channel_moved(self, channel)


class ClusterPubSub:
    """Sharded pub/sub: a connection per master, each channel on its slot's master.

    Offers what the shard uses of a ``PubSubConnection``: ``subscribe`` (one
    future per channel), ``unsubscribe``, ``lost`` and ``close``.
    """

    def __init__(self, shard: ClusterShard) -> None:
        self.shard = shard
        self.connections: dict[str, PubSubConnection] = {}  # node name -> its connection
        self.owners: dict[bytes, PubSubConnection] = {}  # channel -> where it is subscribed
        self.lost = False

    @classmethod
    async def open(cls, shard: ClusterShard) -> ClusterPubSub:
        pubsub = cls(shard)
        try:
            await asyncio.gather(*(pubsub._connect(n) for n in shard.redis.get_primaries()))
        except BaseException:
            pubsub.close()
            raise
        return pubsub

    async def _connect(self, node: ClusterNode) -> PubSubConnection:
        connection = await self.shard.open_pubsub_to(
            node.host, node.port, on_dropped=self.shard.follow, on_lost=self._on_lost
        )
        if self.lost:  # closed meanwhile
            connection.close()
            raise PubSubError("redis pub/sub connection lost")
        self.connections[node.name] = connection
        return connection

    def _on_lost(self, connection: PubSubConnection, exc: BaseException | None) -> None:
        if self.lost:
            return  # closed on purpose
        self.close()
        self.shard._on_pubsub_lost(self, exc)

    def subscribe(self, names: list[bytes]) -> list[asyncio.Future]:
        if self.lost:
            raise PubSubError("redis pub/sub connection lost")
        loop = asyncio.get_running_loop()
        return [loop.create_task(self._subscribe(name)) for name in names]

    async def _subscribe(self, name: bytes) -> None:
        cluster = self.shard.redis
        for attempt in range(1, MOVED_ATTEMPTS + 1):
            node = cluster.get_node_from_key(name)
            connection = self.connections.get(node.name)
            if connection is None:
                connection = await self._connect(node)
            try:
                await connection.subscribe([name])[0]
            except PubSubError as exc:
                if "MOVED" not in str(exc) or attempt == MOVED_ATTEMPTS:
                    raise
                await asyncio.sleep(0.02 * attempt)
                await cluster.nodes_manager.initialize()
                continue
            self.owners[name] = connection
            return

    def unsubscribe(self, names: list[bytes]) -> None:
        for name in names:
            connection = self.owners.pop(name, None)
            if connection is not None and not connection.lost:
                connection.unsubscribe([name])

    def close(self) -> None:
        self.lost = True
        for connection in self.connections.values():
            connection.close()


__all__ = ["ClusterPubSub", "ClusterShard"]
