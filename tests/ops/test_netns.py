"""A cluster on separate network hosts (Linux network namespaces on one bridge), under
network faults that process kills do not make: partitions, black holes, packet loss,
latency and a slow Redis.

Redis, three hub nodes, and an edge host holding nginx (docs/nginx.conf) and the clients
each have a namespace of their own. The test process runs its event loop inside the edge
host, so its clients, HTTP calls and delaying proxies live there. Heartbeats and the
breaker are set short so that each fault shows within seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from fastws.hub.client import Client
from tests.support.delayproxy import DelayProxy
from tests.support.hubprocess import CHANNELS_TOML, HubProcess
from tests.support.loops import run_async
from tests.support.netns import Host, Network
from tests.support.nginx import Nginx
from tests.support.polling import until
from tests.support.redis import RedisServer

PING_INTERVAL, PING_TIMEOUT = 1.0, 1.0
BROKER_TIMEOUT, COOLDOWN_MAX = 0.5, 1.0
HUB_ARGS = (
    "--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT),
    "--broker-timeout", str(BROKER_TIMEOUT), "--broker-failure-threshold", "2",
    "--broker-cooldown", "0.2", "--broker-cooldown-max", str(COOLDOWN_MAX),
)  # fmt: skip
PARTITION = 20.0  # seconds a node stays cut off from Redis


@dataclass
class Cluster:
    network: Network
    edge: Host  # nginx and the clients
    redis_host: Host
    node_hosts: list[Host]
    redis: RedisServer
    nodes: list[HubProcess]
    nginx: Nginx
    config: str

    def hub(self, host: Host, broker: str) -> HubProcess:
        """A hub node listening on ``host``'s address, with the test's settings."""
        return HubProcess(
            "--broker", broker, "--config", self.config, *HUB_ARGS,
            host=host.address, wrapper=host.wrapper(),
        )  # fmt: skip

    def client(self, url: str, **options) -> Client:
        """A client that pings as often as the hub asks and reconnects quickly."""
        options = {"ping_timeout": PING_TIMEOUT, "backoff_base": 0.05, "backoff_max": 0.5, **options}
        return Client(url, **options)

    @property
    def through_nginx(self) -> str:
        return f"ws://127.0.0.1:{self.nginx.port}/connection"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    network = Network()
    try:
        edge, redis_host = network.host("edge"), network.host("redis")
        node_hosts = [network.host(f"node{i}") for i in range(3)]
        descriptor, config = tempfile.mkstemp(prefix="fastws-hub-", suffix=".toml")
        with os.fdopen(descriptor, "w") as file:
            file.write(CHANNELS_TOML)
        network.adopt(lambda: os.unlink(config))
        # Reached from other hosts without a password: only this run's namespaces see it.
        redis = RedisServer(
            None, "--protected-mode", "no",
            host=redis_host.address, wrapper=redis_host.wrapper(),
        )  # fmt: skip
        network.adopt(redis.cleanup)
        with edge.inside():
            redis.start()
            cluster = Cluster(network, edge, redis_host, node_hosts, redis, [], None, config)
            for host in node_hosts:
                node = cluster.hub(host, redis.url)
                network.adopt(node.close)
                cluster.nodes.append(node.start())
            upstreams = [f"{node.host}:{node.port}" for node in cluster.nodes]
            cluster.nginx = Nginx(upstreams, wrapper=edge.wrapper())
            network.adopt(cluster.nginx.cleanup)
            cluster.nginx.start()
        yield cluster
    except BaseException:
        for node in getattr(locals().get("cluster"), "nodes", []):
            print(f"--- hub {node.host} ---\n{node.log()[-4000:]}")
        raise
    finally:
        network.close()


async def publish(node: HubProcess, channel: str, data: object) -> tuple[int, dict]:
    return await node.api("POST", "/api/v1/publish", {"channel": channel, "data": data})


async def publish_all(node: HubProcess, channel: str, items: range) -> None:
    for i in items:
        status, reply = await publish(node, channel, i)
        assert status == 200, reply


async def connections(node: HubProcess) -> int:
    status, body = await node.api("GET", "/api/v1/info")
    assert status == 200, body
    return body["result"]["connections"]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def show_logs(cluster: Cluster) -> None:
    for node in cluster.nodes:
        print(f"--- hub {node.host} ---\n{node.log()[-3000:]}")
    print(f"--- nginx ---\n{cluster.nginx.log()}")


@run_async(loops=("uvloop",), timeout=90)
async def test_a_node_cut_off_from_redis_keeps_its_clients_and_says_what_it_lost(
    cluster: Cluster,
) -> None:
    """20 s without Redis: publish there fails at once, /ready says degraded, the clients
    stay; after it, the channel with history continues without a gap and the one without
    is ended by an unsubscribe push, resubscribed and reported ``recovered: false``."""
    cut_node, other = cluster.nodes[0], cluster.nodes[1]
    cut_host = cluster.node_hosts[0]
    client = cluster.client(cut_node.url())
    with cluster.edge.inside():
        try:
            kept: list = []
            news: list = []
            resyncs: dict[str, list[bool]] = {"stream:cut": [], "news": []}
            await client.connect()
            await client.subscribe(
                "stream:cut", on_publication=kept.append,
                on_resync=lambda s: resyncs["stream:cut"].append(s.recovered),
            )  # fmt: skip
            await client.subscribe(
                "news", on_publication=news.append,
                on_resync=lambda s: resyncs["news"].append(s.recovered),
            )  # fmt: skip
            await publish_all(other, "stream:cut", range(5))
            await publish_all(other, "news", range(5))
            await until(lambda: len(kept) == 5 and len(news) == 5, "the first publications")

            cut_host.cut(cluster.redis_host)
            started = time.monotonic()
            answers = []
            published = 5
            try:
                while time.monotonic() - started < PARTITION:
                    began = time.monotonic()
                    status, reply = await publish(cut_node, "stream:cut", "lost")
                    answers.append((time.monotonic() - began, status, reply))
                    assert status in (200, 503), reply
                    await publish_all(other, "stream:cut", range(published, published + 1))
                    await publish_all(other, "news", range(published, published + 1))
                    published += 1
                    await asyncio.sleep(0.5)
                failed = [(took, reply) for took, status, reply in answers if status == 503]
                print(f"\ncut off: {len(failed)} of {len(answers)} publishes answered 503, "
                      f"the first after {failed[0][0] * 1000:.0f} ms, the median after "
                      f"{statistics.median(t for t, _ in failed) * 1000:.1f} ms")
                assert len(failed) >= len(answers) - 2, answers  # the first may still pass
                assert all(r["error"]["code"] == 503 for _, r in failed)
                # A publish never waits longer than the broker timeout, and once the
                # circuit is open it fails at once.
                assert max(took for took, _ in failed) < 3 * BROKER_TIMEOUT, answers
                assert statistics.median(took for took, _ in failed) < BROKER_TIMEOUT / 2
                assert await cut_node.probe("/health") == (200, "ok")
                status, body = await cut_node.probe("/ready")
                assert status == 503 and json.loads(body)["broker"]["state"] == "degraded"
                assert client.state == "connected" and client.reconnects == 0
            finally:
                cut_host.heal()

            await cut_node.wait_ready(timeout=10 * COOLDOWN_MAX)
            await publish_all(other, "stream:cut", range(published, published + 3))
            published += 3
            await until(lambda: len(kept) == published, "every publication of stream:cut")

            async def news_resubscribed() -> bool:
                await publish(other, "news", "after")  # news of a new position, if needed
                return bool(resyncs["news"])

            await until(news_resubscribed, "news resubscribed", interval=0.2)
            await publish_all(other, "news", range(published, published + 3))
            await until(lambda: news[-1].data == published + 2, "news after the resubscribe")
            # With history, the node filled the gap itself: every publication once, in order.
            assert [p.data for p in kept] == list(range(published))
            assert [p.offset for p in kept] == list(range(1, published + 1))
            assert resyncs["stream:cut"] == []
            # Without history, the gap is told, never silent: recovered false on one channel,
            # the connection and its other subscription kept.
            assert resyncs["news"] == [False]
            assert [p.data for p in news[:5]] == list(range(5))
            assert [p.data for p in news[-3:]] == list(range(published, published + 3))
            assert client.state == "connected" and client.reconnects == 0
        except BaseException:
            show_logs(cluster)
            raise
        finally:
            await client.close()


@run_async(loops=("uvloop",), timeout=90)
async def test_a_black_hole_is_found_by_heartbeats_on_both_sides(cluster: Cluster) -> None:
    """Packets between nginx and one node vanish, no TCP connection closes: the clients'
    pings and the node's pings both notice within their interval and timeout; the clients
    come back through nginx on the other nodes and recover what was published meanwhile."""
    clients: list[Client] = []
    with cluster.edge.inside():
        try:
            lost: dict[int, float] = {}  # client index -> when it saw its connection die
            received: list[list] = [[] for _ in range(6)]
            resyncs: list[bool] = []
            for i in range(6):
                client = cluster.client(
                    cluster.through_nginx,
                    on_disconnect=lambda *_, i=i: lost.setdefault(i, time.monotonic()),
                )
                await client.connect()
                await client.subscribe(
                    "stream:hole", on_publication=received[i].append,
                    on_resync=lambda s: resyncs.append(s.recovered),
                )  # fmt: skip
                clients.append(client)
            counts = [await connections(node) for node in cluster.nodes]
            victim = max(range(3), key=counts.__getitem__)
            assert sum(counts) == 6 and counts[victim] >= 1, counts
            others = [node for i, node in enumerate(cluster.nodes) if i != victim]
            await publish_all(others[0], "stream:hole", range(5))
            await until(lambda: all(len(r) == 5 for r in received), "the first publications")

            victim_node, victim_host = cluster.nodes[victim], cluster.node_hosts[victim]
            timeouts_before = victim_node.log().count("code=1011")
            victim_host.cut(cluster.edge)
            started = time.monotonic()
            try:
                await until(
                    lambda: len(lost) == counts[victim], "the clients of the node noticing",
                    timeout=10,
                )  # fmt: skip
                server_noticed = await until(
                    lambda: victim_node.log().count("code=1011") - timeouts_before
                    >= counts[victim] and time.monotonic(),
                    "the node closing its silent connections", timeout=10,
                )  # fmt: skip
                await publish_all(others[1], "stream:hole", range(5, 10))
                await until(
                    lambda: all(len(r) == 10 for r in received), "all publications", timeout=20
                )
                assert sum([await connections(node) for node in others]) == 6
            finally:
                victim_host.heal()
            detection = PING_INTERVAL + PING_TIMEOUT
            client_delays = [at - started for at in lost.values()]
            print(
                f"\nblack hole found by clients after {max(client_delays):.2f} s, "
                f"by the node after {server_noticed - started:.2f} s "
                f"(interval + timeout: {detection:g} s)"
            )
            # Within the configured interval and timeout, plus the keepalive timer's ticks
            # (a quarter of the shorter) and the time a busy machine takes to notice.
            assert max(client_delays) <= detection * 2
            assert server_noticed - started <= detection * 2
            for r in received:
                assert [p.data for p in r] == list(range(10))
            assert resyncs == []
            assert sum(client.reconnects for client in clients) == counts[victim]
        except BaseException:
            show_logs(cluster)
            raise
        finally:
            for client in clients:
                await client.close()


@run_async(loops=("uvloop",), timeout=90)
async def test_loss_and_latency_on_client_links_lose_and_reorder_nothing(
    cluster: Cluster,
) -> None:
    """5 % of the edge host's packets dropped each way and 200 ms added each way between
    every client and nginx, under a publish load: every client gets every publication
    once, in order; the delivery latency percentiles are printed."""
    delay, count, rate, clients_count = 0.2, 150, 50, 6
    with cluster.edge.inside():
        proxies = [DelayProxy(("127.0.0.1", cluster.nginx.port), delay) for _ in range(clients_count)]
        clients: list[Client] = []
        try:
            for proxy in proxies:
                await proxy.start()
            received: list[list] = [[] for _ in range(clients_count)]
            latencies: list[float] = []
            resyncs: list[bool] = []

            def on_publication(i: int, publication) -> None:
                received[i].append(publication)
                latencies.append(time.monotonic() - publication.data["t"])

            cluster.edge.lose(5)
            for i, proxy in enumerate(proxies):
                client = cluster.client(
                    f"ws://127.0.0.1:{proxy.port}/connection", ping_timeout=10.0
                )
                await client.connect()
                await client.subscribe(
                    "stream:lossy", on_publication=lambda p, i=i: on_publication(i, p),
                    on_resync=lambda s: resyncs.append(s.recovered),
                )  # fmt: skip
                clients.append(client)
            offsets: dict[int, int] = {}  # publication number -> its offset, when acknowledged

            async def publish_one(i: int) -> None:
                node = cluster.nodes[i % 3]
                status, reply = await publish(node, "stream:lossy", {"i": i, "t": time.monotonic()})
                assert status == 200, reply
                offsets[reply["result"]["offset"]] = i

            publishing = []
            for i in range(count):  # at a steady rate, not one after the other's answer
                publishing.append(asyncio.create_task(publish_one(i)))
                await asyncio.sleep(1 / rate)
            await asyncio.gather(*publishing)
            await until(
                lambda: all(len(r) >= count for r in received), "every publication", timeout=30
            )
            cluster.edge.heal()
            first = min(offsets)
            for r in received:  # each exactly once, in the channel's (offset) order
                assert [p.offset for p in r] == list(range(first, first + count))
                assert [p.data["i"] for p in r] == [offsets[p.offset] for p in r]
            assert all(resyncs)
            figures = {f"p{int(q * 100)}": percentile(latencies, q) for q in (0.5, 0.9, 0.99)}
            figures["max"] = max(latencies)
            reconnects = sum(client.reconnects for client in clients)
            print(
                f"\ndelivery latency, {clients_count} clients x {count} publications at {rate}/s, "
                f"5 % loss, {delay * 1000:g} ms added each way: "
                + ", ".join(f"{name} {value * 1000:.0f} ms" for name, value in figures.items())
                + f"; reconnects {reconnects}"
            )
            assert figures["p50"] >= delay  # the proxy's delay is on the path
        except BaseException:
            show_logs(cluster)
            raise
        finally:
            cluster.edge.heal()
            for client in clients:
                await client.close()
            for proxy in proxies:
                await proxy.close()


@run_async(loops=("uvloop",), timeout=90)
async def test_a_slow_redis_trips_the_breaker_only_past_the_broker_timeout(
    cluster: Cluster,
) -> None:
    """A node whose Redis link goes through a delaying proxy: slower than before but within
    ``broker_timeout`` it keeps working with its circuit closed; past it, publish fails
    with 503 no later than the timeout, the circuit opens and later calls fail at once;
    once Redis is fast again, a probe closes the circuit by itself."""
    host = cluster.network.host("slow")
    with cluster.edge.inside():
        redis = (cluster.redis.host, cluster.redis.port)
        async with DelayProxy(redis, 0.0, host=cluster.edge.address) as proxy:
            node = cluster.hub(host, f"redis://{proxy.host}:{proxy.port}/0")
            async with node:
                try:
                    await node.wait_ready()

                    async def timed_publishes(n: int) -> list[tuple[float, int, dict]]:
                        answers = []
                        for i in range(n):
                            began = time.monotonic()
                            status, reply = await publish(node, "stream:slow", i)
                            answers.append((time.monotonic() - began, status, reply))
                        return answers

                    fast = await timed_publishes(5)
                    assert all(status == 200 for _, status, _ in fast), fast
                    proxy.delay = BROKER_TIMEOUT / 5
                    slow = await timed_publishes(5)
                    assert all(status == 200 for _, status, _ in slow), slow
                    # Each publish is one round trip through the proxy (its delay both ways).
                    assert min(took for took, _, _ in slow) >= 2 * proxy.delay
                    status_now = await node.broker_status()
                    assert status_now["circuit"] == "closed" and status_now["trips"] == 0

                    proxy.delay = 2 * BROKER_TIMEOUT
                    stalled = await timed_publishes(8)
                    assert all(status == 503 for _, status, _ in stalled), stalled
                    took = [t for t, _, _ in stalled]
                    print("\nslow Redis: publish answered 503 after "
                          + ", ".join(f"{t * 1000:.0f}" for t in took) + " ms")
                    assert max(took) < 2 * BROKER_TIMEOUT, took  # never waits past the timeout
                    assert min(took[2:]) < BROKER_TIMEOUT / 5, took  # open: fails at once
                    status, body = await node.probe("/ready")
                    assert status == 503, body
                    status_now = await node.broker_status()
                    assert status_now["circuit"] in ("open", "half_open")
                    assert status_now["trips"] >= 1

                    proxy.delay = 0.0
                    began = time.monotonic()
                    await node.wait_ready(timeout=10 * COOLDOWN_MAX)
                    print(f"\nslow Redis: the circuit closed {time.monotonic() - began:.2f} s "
                          f"after Redis was fast again (cooldown_max {COOLDOWN_MAX:g} s)")
                    status, reply = await publish(node, "stream:slow", "back")
                    assert status == 200, reply
                except BaseException:
                    print(f"--- hub {node.host} ---\n{node.log()[-4000:]}")
                    raise


@run_async(loops=("uvloop",), timeout=30)
async def test_the_delay_proxy_adds_its_delay_and_little_more() -> None:
    """What the latency of the tests above is made of: a round trip through the proxy
    costs twice its delay plus a small share of it."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    target = ("127.0.0.1", server.sockets[0].getsockname()[1])

    async def round_trips(port: int) -> list[float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        times = []
        for _ in range(10):
            began = time.monotonic()
            writer.write(b"x" * 100)
            await reader.readexactly(100)
            times.append(time.monotonic() - began)
        writer.close()
        return times

    try:
        direct = statistics.median(await round_trips(target[1]))
        for delay in (0.0, 0.05):
            async with DelayProxy(target, delay) as proxy:
                proxied = statistics.median(await round_trips(proxy.port))
            added = proxied - direct - 2 * delay
            print(f"\ndelay proxy at {delay * 1000:g} ms: round trip {proxied * 1000:.2f} ms, "
                  f"direct {direct * 1000:.2f} ms, added beyond the delay {added * 1000:.2f} ms")
            assert proxied >= 2 * delay
            if delay:
                assert added < 0.1 * 2 * delay
    finally:
        server.close()
        await server.wait_closed()
