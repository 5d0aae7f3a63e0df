"""Redis Cluster pub/sub: sharded (SSUBSCRIBE, SPUBLISH) against classic (SUBSCRIBE, PUBLISH).

    python -m bench.redis_cluster_pubsub
    python -m bench.redis_cluster_pubsub --publications 20000 --channels 200 --nodes 3

A private cluster (three masters, a replica each, ``tests/support/redis_cluster.py``)
serves one publishing broker and ``--nodes`` subscribing brokers (hub nodes), each
subscribed to every channel. The publisher keeps ``--concurrency`` publications in
flight, spread over the channels, for each mode in turn. Reported per mode:
publications per second, publish-to-delivery latency (p50, p99) at the subscribing
nodes, and the CPU time every Redis server of the cluster spent per 1000
publications (``INFO cpu``, replicas included): classic PUBLISH is copied over the
cluster bus to every node, sharded only to the owner's replica.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import struct
import time

from fastws.hub.broker import PublishOptions
from fastws.hub.broker.redis import RedisBroker
from tests.support.brokers import LatencySink, Sink
from tests.support.redis import RedisServer
from tests.support.redis_cluster import LocalRedisCluster, info_field

OPTIONS = PublishOptions(history_size=10, history_ttl=60)


def cluster_cpu(nodes: list[RedisServer]) -> float:
    return sum(
        float(info_field(node, "cpu", "used_cpu_sys")) + float(info_field(node, "cpu", "used_cpu_user"))
        for node in nodes
    )


async def measure(cluster: LocalRedisCluster, mode: str, args: argparse.Namespace) -> dict:
    url = cluster.url()
    publisher = RedisBroker([url], cluster_pubsub=mode)
    await publisher.start(Sink())
    nodes = [RedisBroker([url], cluster_pubsub=mode) for _ in range(args.nodes)]
    sinks = [LatencySink() for _ in nodes]
    channels = [f"{mode}:{i}" for i in range(args.channels)]
    for node, sink in zip(nodes, sinks, strict=True):
        await node.start(sink)
        for channel in channels:
            await node.subscribe(channel)
    total = args.publications
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            data = struct.pack("d", time.perf_counter()) + b"x" * args.size
            await publisher.publish(channels[i % len(channels)], data, None, OPTIONS)

    cpu = cluster_cpu(cluster.alive())
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 30
    while any(len(s.delays) < total for s in sinks) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    cpu = cluster_cpu(cluster.alive()) - cpu
    delays = sorted(d for s in sinks for d in s.delays)
    for broker in (publisher, *nodes):
        await broker.close()
    return {
        "mode": mode,
        "publications_per_s": round(total / elapsed),
        "delivered": f"{len(delays)}/{total * len(nodes)}",
        "p50_ms": round(statistics.median(delays) * 1000, 2),
        "p99_ms": round(delays[int(len(delays) * 0.99) - 1] * 1000, 2),
        "redis_cpu_ms_per_1000": round(cpu / total * 1000 * 1000, 1),
    }


async def main(args: argparse.Namespace) -> None:
    cluster = LocalRedisCluster()
    try:
        await asyncio.to_thread(cluster.start)
        print(
            f"{args.publications} publications of {args.size + 8} bytes over {args.channels} "
            f"channels, {args.concurrency} in flight, {args.nodes} subscribing nodes"
        )
        for mode in args.modes.split(","):
            print(await measure(cluster, mode, args))
    finally:
        cluster.cleanup()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--publications", type=int, default=20000)
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--size", type=int, default=100, help="payload bytes after the send time")
    parser.add_argument("--modes", default="sharded,classic,sharded,classic")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
