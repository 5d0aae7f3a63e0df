"""The NATS JetStream broker against the Redis broker, each on one private server.

    python -m bench.nats_broker
    python -m bench.nats_broker --publications 5000 --channels 50 --nodes 2 --concurrency 32

One publishing broker and ``--nodes`` subscribing brokers (hub nodes), each subscribed
to every channel; the publisher keeps ``--concurrency`` publications in flight, spread
over the channels, with history kept (100 per channel). Reported per broker:
publications per second acknowledged, and the publish-to-delivery latency (p50, p99)
at the subscribing nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import struct
import time

import uvloop

from fastws.hub.broker import Broker, PublishOptions
from fastws.hub.broker.nats import NatsBroker
from fastws.hub.broker.redis import RedisBroker
from tests.support.brokers import LatencySink, Sink
from tests.support.nats import NatsServer
from tests.support.redis import RedisServer

OPTIONS = PublishOptions(history_size=100, history_ttl=300)


async def measure(make: type[Broker], url: str, args: argparse.Namespace) -> dict:
    publisher = make([url])
    await publisher.start(Sink())
    nodes = [make([url]) for _ in range(args.nodes)]
    sinks = [LatencySink() for _ in nodes]
    channels = [f"bench:{i}" for i in range(args.channels)]
    for node, sink in zip(nodes, sinks, strict=True):
        await node.start(sink)
        for channel in channels:
            await node.subscribe(channel)
    for channel in channels:  # streams made and sized before the clock starts
        await publisher.publish(channel, struct.pack("d", time.perf_counter()), None, OPTIONS)
    for sink in sinks:
        sink.delays.clear()
    expected = args.publications * args.nodes
    counter = iter(range(args.publications))

    async def worker() -> None:
        for i in counter:
            data = struct.pack("d", time.perf_counter())
            await publisher.publish(channels[i % len(channels)], data, None, OPTIONS)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 30
    while sum(len(s.delays) for s in sinks) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    delays = sorted(d for s in sinks for d in s.delays)
    for broker in (publisher, *nodes):
        await broker.close()
    return {
        "per_second": args.publications / elapsed,
        "delivered": len(delays) / expected,
        "p50_ms": statistics.median(delays) * 1000,
        "p99_ms": delays[int(len(delays) * 0.99) - 1] * 1000,
    }


async def main(args: argparse.Namespace) -> None:
    print(
        f"{args.publications} publications over {args.channels} channels, {args.nodes} "
        f"subscribing nodes, {args.concurrency} in flight"
    )
    print(f"{'broker':8} {'publ./s':>9} {'delivered':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, make, server in (
        ("redis", RedisBroker, RedisServer()),
        ("nats", NatsBroker, NatsServer()),
    ):
        server.start()
        try:
            row = await measure(make, server.url, args)
        finally:
            server.cleanup()
        print(
            f"{name:8} {row['per_second']:9.0f} {row['delivered']:9.1%} "
            f"{row['p50_ms']:8.2f} {row['p99_ms']:8.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publications", type=int, default=5000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    uvloop.run(main(parser.parse_args()))
