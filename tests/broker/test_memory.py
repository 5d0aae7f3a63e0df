"""The in-memory broker through the broker interface, with a recording sink."""

from __future__ import annotations

import pytest

from fastws.hub.broker import BrokerUnavailable, ClientInfo, PublishOptions, StreamPosition
from fastws.hub.broker.memory import MemoryBroker
from tests.support.brokers import (
    Clock,
    Sink,
    check_occupancy,
)
from tests.support.loops import run_async

HISTORY = PublishOptions(history_size=3, history_ttl=10.0)
NONE = PublishOptions()


async def started(clock: Clock | None = None, **options) -> tuple[MemoryBroker, Sink]:
    broker = MemoryBroker(clock=clock or Clock(), **options)
    sink = Sink()
    await broker.start(sink)
    return broker, sink


@run_async(loops=("asyncio",))
async def test_offsets_grow_and_only_subscribed_channels_reach_the_sink() -> None:
    broker, sink = await started()
    assert broker.healthy
    first = await broker.publish("a", b"1", "u", NONE)
    assert first.offset == 1
    await broker.subscribe("a")
    second = await broker.publish("a", b"2", None, NONE)
    await broker.publish("b", b"x", None, NONE)
    assert second == StreamPosition(2, first.epoch)
    assert sink.events == [("pub", "a", 2, b"2")]
    await broker.unsubscribe("a")
    await broker.publish("a", b"3", None, NONE)
    assert len(sink.events) == 1
    await broker.close()
    assert not broker.healthy
    with pytest.raises(BrokerUnavailable):
        await broker.publish("a", b"4", None, NONE)


@run_async(loops=("asyncio",))
async def test_history_bounded_by_size_and_age() -> None:
    clock = Clock()
    broker, _ = await started(clock)
    for i in range(5):
        await broker.publish("h", str(i).encode(), None, HISTORY)
        clock.now += 1
    result = await broker.history("h", None, None)
    assert [p.offset for p in result.publications] == [3, 4, 5]
    assert result.position.offset == 5
    assert [p.offset for p in (await broker.history("h", None, 2)).publications] == [3, 4]
    assert (await broker.history("h", None, 0)).publications == []
    epoch = result.position.epoch
    since = await broker.history("h", StreamPosition(3, epoch), None)
    assert [p.offset for p in since.publications] == [4, 5]
    older = await broker.history("h", StreamPosition(1, epoch), None)
    assert [p.offset for p in older.publications] == [3, 4, 5]  # the caller sees the hole
    other = await broker.history("h", StreamPosition(1, "other"), None)
    assert other.publications == [] and other.position.offset == 5
    clock.now += 8.5  # offsets 3 and 4 are over 10 s old now
    assert [p.offset for p in (await broker.history("h", None, None)).publications] == [5]
    clock.now += 100
    assert (await broker.history("h", None, None)).publications == []
    await broker.close()


@run_async(loops=("asyncio",))
async def test_the_one_node_occupies_and_vacates_channels() -> None:
    broker, _ = await started()
    await check_occupancy([broker], "o")
    await broker.close()


@run_async(loops=("asyncio",))
async def test_node_announcements_expire() -> None:
    clock = Clock()
    broker, _ = await started(clock)
    await broker.announce("a", b"1", 10)
    await broker.announce("b", b"2", 30)
    clock.now += 20
    assert await broker.nodes() == {"b": b"2"}
    await broker.close()


@run_async(loops=("asyncio",))
async def test_idle_streams_are_dropped_and_come_back_with_a_new_epoch() -> None:
    clock = Clock()
    broker, _ = await started(clock, history_meta_ttl=60.0)
    old = await broker.publish("idle", b"1", None, HISTORY)
    kept = await broker.publish("watched", b"1", None, HISTORY)
    await broker.subscribe("watched")
    clock.now += 61
    broker._cleanup()
    new = await broker.publish("idle", b"2", None, HISTORY)
    assert new.epoch != old.epoch and new.offset == 1
    assert (await broker.publish("watched", b"2", None, HISTORY)) == StreamPosition(2, kept.epoch)
    await broker.close()


@run_async(loops=("asyncio",))
async def test_presence_join_leave_users() -> None:
    broker, sink = await started()
    alice = ClientInfo("c1", "alice", b'{"n":1}')
    await broker.add_presence("p", alice)
    await broker.add_presence("p", ClientInfo("c2", "bob"))
    assert set(await broker.presence("p")) == {"c1", "c2"}
    await broker.remove_presence("p", "c2")
    assert await broker.presence("p") == {"c1": alice}
    await broker.remove_presence("p", "c1")
    assert await broker.presence("p") == {}
    await broker.publish_join("p", alice)  # nobody subscribed on this node
    await broker.subscribe("p")
    await broker.publish_join("p", alice)
    await broker.publish_leave("p", alice)
    await broker.send_to_user("bob", "alice", b"1")
    await broker.disconnect_user("bob", 4503, "bye")
    assert sink.events == [
        ("join", "p", "c1"),
        ("leave", "p", "c1"),
        ("message", "bob", "alice", b"1"),
        ("disconnect", "bob", 4503, "bye"),
    ]
    await broker.close()
