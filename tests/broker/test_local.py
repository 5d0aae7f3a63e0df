"""The master's memory broker shared over socket pairs: BrokerHost and LocalBroker."""

from __future__ import annotations

import asyncio
import socket

import pytest

from fastws.hub.broker import BrokerUnavailable, ClientInfo, PublishOptions, StreamPosition
from fastws.hub.broker.local import BrokerHost, LocalBroker
from fastws.hub.broker.memory import MemoryBroker
from tests.support.brokers import (
    Sink,
    check_binary_data,
    check_gone_node_vacates,
    check_occupancy,
    check_reverse_history,
    check_server_api_support,
)
from tests.support.loops import run_async

HISTORY = PublishOptions(history_size=10, history_ttl=60)


async def attach(host: BrokerHost, name: str, pid: int = 0) -> tuple[LocalBroker, Sink, list]:
    ours, theirs = socket.socketpair()
    await host.attach(ours, name, pid)
    lost: list = []
    broker = LocalBroker(theirs, on_lost=lambda: lost.append(name))
    sink = Sink()
    await broker.start(sink)
    return broker, sink, lost


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


@run_async()
async def test_two_workers_share_streams_presence_and_users() -> None:
    host = BrokerHost(MemoryBroker())
    await host.start()
    (one, sink1, _), (two, sink2, _) = [await attach(host, n) for n in ("one", "two")]
    try:
        await one.subscribe("c")
        await two.subscribe("c")
        first = await one.publish("c", b'"a"', "alice", HISTORY)
        second = await two.publish("c", b'"b"', None, HISTORY)
        assert second == StreamPosition(first.offset + 1, first.epoch)
        await settle()
        for sink in (sink1, sink2):
            assert sink.events == [("pub", "c", 1, b'"a"'), ("pub", "c", 2, b'"b"')]
        result = await two.history("c", StreamPosition(1, first.epoch), None)
        assert [(p.offset, p.data, p.user) for p in result.publications] == [(2, b'"b"', None)]
        assert result.position == second
        # Only interested workers get a channel; user messages go to every worker.
        await two.unsubscribe("c")
        await one.publish("c", b'"c"', None, HISTORY)
        await one.add_presence("c", ClientInfo("x1", "alice", b'{"n":1}'))
        await one.publish_join("c", ClientInfo("x1", "alice"))
        await two.send_to_user("bob", "alice", b'"hi"')
        await two.disconnect_user("bob", 4503, "bye")
        await settle()
        assert ("pub", "c", 3, b'"c"') in sink1.events
        assert ("pub", "c", 3, b'"c"') not in sink2.events
        assert ("join", "c", "x1") in sink1.events
        for sink in (sink1, sink2):
            assert sink.events[-2:] == [
                ("message", "bob", "alice", b'"hi"'),
                ("disconnect", "bob", 4503, "bye"),
            ]
        present = await two.presence("c")
        assert present == {"x1": ClientInfo("x1", "alice", b'{"n":1}')}
        assert host.broker.sizes() == (1, 3, 1)
    finally:
        await one.close()
        await two.close()
        await host.close()


@run_async()
async def test_a_lost_worker_leaves_no_presence_and_learns_the_master_is_gone() -> None:
    host = BrokerHost(MemoryBroker())
    await host.start()
    (one, _, _), (two, _, lost) = [await attach(host, n) for n in ("one", "two")]
    try:
        await one.subscribe("c")
        await one.add_presence("c", ClientInfo("x1", "alice"))
        await two.add_presence("c", ClientInfo("y1", "bob"))
        await one.close()  # the worker exits
        await settle()
        assert set(await two.presence("c")) == {"y1"}
        assert "c" not in host.interest
        await host.close()  # the master is gone
        await settle()
        assert lost == ["two"] and not two.healthy
        with pytest.raises(BrokerUnavailable):
            await two.publish("c", b"1", None, HISTORY)
    finally:
        await two.close()
        await host.close()


@run_async()
async def test_workers_are_counted_per_channel_and_a_dead_one_vacates_once() -> None:
    host = BrokerHost(MemoryBroker())
    await host.start()
    workers = [await attach(host, n) for n in ("one", "two", "three")]
    (one, sink1, _), (two, sink2, _), (three, _, _) = workers
    try:
        await check_occupancy([one, two], "o")
        await check_gone_node_vacates([(one, sink1), (two, sink2)], three, three.close)
    finally:
        for broker, _, _ in workers:
            await broker.close()
        await host.close()


@run_async()
async def test_a_channel_vacated_with_no_worker_left_is_told_to_the_next_one() -> None:
    host = BrokerHost(MemoryBroker())
    await host.start()
    one, _, _ = await attach(host, "one")
    try:
        await one.subscribe("c")
        await one.close()
        await settle()
        two, sink, _ = await attach(host, "two")
        await settle()
        assert sink.events == [("vacated", "c")]
        await two.close()
    finally:
        await host.close()


@run_async()
async def test_history_read_in_reverse_through_the_host() -> None:
    host = BrokerHost(MemoryBroker())
    await host.start()
    broker, _, _ = await attach(host, "one")
    try:
        await check_reverse_history(broker, "r")
    finally:
        await broker.close()
        await host.close()


@run_async()
async def test_control_messages_reach_every_worker() -> None:
    host = BrokerHost(MemoryBroker())
    await host.start()
    (one, sink1, _), (two, sink2, _) = [await attach(host, n) for n in ("one", "two")]
    try:
        await check_server_api_support(one, [sink1, sink2], "s")
        assert await two.nodes() == await one.nodes()
    finally:
        await one.close()
        await two.close()
        await host.close()


@run_async()
async def test_binary_data_round_trips() -> None:
    host = BrokerHost(MemoryBroker())
    await host.start()
    broker, sink, _ = await attach(host, "one")
    try:
        await check_binary_data(broker, sink, "b")
    finally:
        await broker.close()
        await host.close()
