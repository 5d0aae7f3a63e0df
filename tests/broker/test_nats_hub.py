"""Hub nodes (``python -m fastws`` processes) joined through NATS: one server shared by two
nodes, and a cluster of three that loses a server under a publish load."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys

import nats
import pytest

import fastws.hub.broker.nats.records as nr
from fastws.hub.app import Hub
from fastws.hub.client import Client
from fastws.hub.config import ConfigError, HubConfig
from tests.broker.test_redis_faults import publish, steady_load
from tests.support.hooks_app import proxy_backend
from tests.support.hub import HubClient
from tests.support.hubprocess import dev_token, hub_nodes
from tests.support.loops import run_async
from tests.support.nats import LocalNatsCluster, NatsServer
from tests.support.paths import ROOT
from tests.support.polling import until

FAST_RETRY = ("--broker-cooldown", "0.2", "--broker-cooldown-max", "1")


def test_hooks_on_channel_occupancy_are_refused_with_nats() -> None:
    config = HubConfig(
        broker="nats://127.0.0.1:4222",
        insecure=True,
        proxy_notify_endpoint="http://127.0.0.1:9/notify",
    )
    with pytest.raises(ConfigError, match="channel_occupied and channel_vacated cannot be told"):
        Hub(config)
    config.proxy_notify_events = ["disconnect", "channel_vacated"]
    hint = r'channel_vacated .*set proxy_notify_events = \["disconnect"\]'
    with pytest.raises(ConfigError, match=hint):
        Hub(config)
    config.proxy_notify_events = ["disconnect"]
    assert Hub(config).node.hooks.has("disconnect")


@run_async(loops=("uvloop",), timeout=90)
async def test_a_notify_endpoint_on_nats_gets_disconnects_when_only_they_are_listed(
    nats_server: NatsServer,
) -> None:
    seen: list[dict] = []
    async with proxy_backend(seen) as base:
        endpoint = ("--proxy-notify-endpoint", f"{base}/notify")
        refused = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "fastws", "--insecure", "--port", "0",
             "--broker", nats_server.url, *endpoint],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert refused.returncode != 0
        assert 'set proxy_notify_events = ["disconnect"]' in refused.stderr
        disconnects_only = (*endpoint, "--proxy-notify-events", "disconnect")
        async with hub_nodes(nats_server.url, 1, *disconnects_only) as [node]:
            await node.wait_ready()
            ann = await HubClient.open(node.port, token=await dev_token(node.port, "ann"))
            await ann.result("subscribe", {"channel": "room:a"})
            await ann.result("unsubscribe", {"channel": "room:a"})
            await ann.close()
            await until(lambda: seen, "the disconnect notification")
            [notification] = seen
            assert (notification["event"], notification["user"]) == ("disconnect", "ann")
            assert notification["client"] == ann.client_id


@run_async(loops=("uvloop",), timeout=120)
async def test_two_nodes_share_publications_presence_joins_and_recovery(
    nats_server: NatsServer,
) -> None:
    async with hub_nodes(nats_server.url, 2) as (a, b):
        for node in (a, b):
            await node.wait_ready()
        assert (await a.broker_status())["state"] == "up"
        watcher = await HubClient.open(a.port, token=await dev_token(a.port, "wendy"))
        await watcher.result("subscribe", {"channel": "room:a"})
        member = await HubClient.open(b.port, token=await dev_token(b.port, "bob"))
        reply = await member.result("subscribe", {"channel": "room:a"})
        start = {"epoch": reply["epoch"], "offset": reply["offset"]}
        joins = await watcher.pushes_of("join", 2)  # its own, then the member's on the other node
        assert [j["info"]["client"] for j in joins] == [watcher.client_id, member.client_id]

        for i in range(5):
            assert (await publish(a, "room:a", i))[0] == 200
        pushes = await member.pushes_of("pub", 5)
        assert [(p["offset"], p["data"]) for p in pushes] == [(i + 1, i) for i in range(5)]
        status, reply = await a.api("GET", "/api/v1/presence?channel=room:a")
        assert status == 200
        assert set(reply["result"]["clients"]) == {watcher.client_id, member.client_id}

        since = {"epoch": start["epoch"], "offset": start["offset"] + 2}
        again = await HubClient.open(a.port)
        reply = await again.result("subscribe", {"channel": "room:a", "since": since})
        assert reply["recovered"] is True and reply["epoch"] == start["epoch"]
        assert [p["data"] for p in reply["publications"]] == [2, 3, 4]
        await member.close()
        (leave,) = await watcher.pushes_of("leave", 1)
        assert leave["info"]["client"] == member.client_id
        for client in (watcher, again):
            await client.close()


async def lead_from(server: NatsServer, channel: str) -> None:
    """Move the leadership of ``channel``'s stream to ``server`` (each step down elects
    another replica, at random)."""
    stream = nr.stream_name(nr.channel_key(channel))
    connection = await nats.connect(server.url)
    js = connection.jetstream()
    try:
        for _ in range(20):
            leader = (await js.stream_info(stream)).cluster.leader
            if leader == server.name:
                return
            await connection.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", b"", timeout=5)

            async def elected(old: str = leader) -> bool:
                with contextlib.suppress(nats.errors.Error):
                    return (await js.stream_info(stream)).cluster.leader not in (None, old)
                return False

            await until(elected, "a new leader of the stream", timeout=20)
        raise AssertionError(f"{server.name} never became the leader of {stream}")
    finally:
        await connection.close()


def without_silent_gaps(events: list[tuple]) -> list[int]:
    """The offsets received; fails where offsets skip without a ``recovered: false``
    since the last publication, or where one comes twice."""
    offsets: list[int] = []
    told = False
    for event in events:
        if event[0] == "resync":
            told = told or event[1] is False
            continue
        offset = event[1]
        if offsets:
            assert offset > offsets[-1], f"offset {offset} after {offsets[-1]}: out of order"
            assert offset == offsets[-1] + 1 or told, f"a silent gap before offset {offset}"
        offsets.append(offset)
        told = False
    return offsets


@run_async(loops=("uvloop",), timeout=240)
async def test_a_nats_server_killed_under_load_in_a_cluster() -> None:
    """Three NATS servers, streams with three replicas; the server node B is connected
    to, which leads the channel's stream, is killed while node A publishes every 10 ms.
    B's client receives every publication once and in order, or is told
    ``recovered: false``; never a silent gap."""
    cluster = await asyncio.to_thread(LocalNatsCluster().start)
    servers = cluster.servers
    try:
        async with hub_nodes(cluster.url(), 2, *FAST_RETRY) as (a, b):
            for node in (a, b):
                await node.wait_ready()
            events: list[tuple] = []  # ("pub", offset, data) and ("resync", recovered)
            client = Client(
                f"ws://127.0.0.1:{b.port}/connection", backoff_base=0.05, backoff_max=0.5
            )
            await client.connect()
            sub = await client.subscribe(
                "stream:load",
                on_publication=lambda p: events.append(("pub", p.offset, p.data)),
                on_resync=lambda s: events.append(("resync", s.recovered)),
            )
            epoch = sub.epoch
            port = int((await b.broker_status())["server"].rpartition(":")[2])
            (victim,) = [server for server in servers if server.port == port]
            await lead_from(victim, "stream:load")  # B's server holds the stream's leader
            acks: list[tuple[int, tuple[int, dict]]] = []
            stop = asyncio.Event()
            load = asyncio.create_task(steady_load(a, "stream:load", acks, stop))
            try:
                await until(lambda: len(events) >= 20, "publications before the kill", timeout=30)
                victim.kill()

                async def b_tripped() -> bool:
                    return (await b.broker_status())["trips"] >= 1

                await until(b_tripped, "B notices its server is gone", timeout=30)
                await b.wait_ready(timeout=60)
                count = len(acks)
                await until(
                    lambda: sum(status == 200 for _, (status, _) in acks[count:]) >= 30,
                    "publications after the failover",
                    timeout=60,
                )
            finally:
                stop.set()
                await load
            last = max(i for i, (status, _) in acks if status == 200)
            await until(
                lambda: any(e[0] == "pub" and e[2] == last for e in events),
                "the last acknowledged publication",
                timeout=30,
            )
        offsets = without_silent_gaps(events)
        received = {e[2] for e in events if e[0] == "pub"}
        acked = {i: reply["result"] for i, (status, reply) in acks if status == 200}
        assert all(result["epoch"] == epoch for result in acked.values())  # R3 kept the stream
        told = ("resync", False) in events
        missing = set(acked) - received
        assert told or not missing, f"acknowledged, never received, not told: {sorted(missing)}"
        if not told:  # exactly once: every acknowledged publication at its offset
            by_offset = {e[1]: e[2] for e in events if e[0] == "pub"}
            assert {i: by_offset[r["offset"]] for i, r in acked.items()} == {i: i for i in acked}
            assert offsets == list(range(offsets[0], offsets[-1] + 1))
        await client.close()
    finally:
        cluster.cleanup()
