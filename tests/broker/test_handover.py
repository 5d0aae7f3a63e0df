"""The memory broker's state handed to the master that replaces it: round trip and refusals."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

from fastws.hub.broker import ClientInfo, PublishOptions, StreamPosition
from fastws.hub.broker import handover as handover_format
from fastws.hub.broker.handover import HandoverRefused
from fastws.hub.broker.local import BrokerHost
from fastws.hub.broker.memory import MemoryBroker
from fastws.hub.config import HubConfig
from fastws.hub.process.supervisor import BROKER_FD_VARIABLE, Supervisor
from tests.broker.test_local import attach, settle
from tests.support.brokers import Clock, Sink
from tests.support.loops import run_async

KEEP_3 = PublishOptions(history_size=3, history_ttl=10.0)
KEEP_LONG = PublishOptions(history_size=100, history_ttl=100.0)


async def started(clock: Clock) -> MemoryBroker:
    broker = MemoryBroker(clock=clock)
    await broker.start(Sink())
    return broker


def through_a_file(state: dict) -> dict:
    """``state`` as the next master reads it: written, then read from the descriptor."""
    fd = handover_format.write(state)
    try:
        os.fstat(fd)
    except OSError:
        pytest.fail("the descriptor of the handover file is not open")
    return handover_format.read(fd)


async def positions_and_data(broker: MemoryBroker, channel: str) -> tuple:
    result = await broker.history(channel, None, None)
    return result.position, [(p.offset, p.epoch, p.data, p.user) for p in result.publications]


@run_async(loops=("asyncio",))
async def test_streams_history_presence_and_nodes_survive_with_their_limits_and_expiry() -> None:
    old_clock = Clock(1000.0)
    old = await started(old_clock)
    for i in range(5):  # history keeps the last 3
        await old.publish("kept", b"%d" % i, "alice" if i % 2 else None, KEEP_3)
    await old.publish("aging", b"early", None, KEEP_3)  # expires at 1010
    await old.announce("node-a", b"info", 30.0)  # expires at 1030
    old_clock.now = 1006.0
    await old.publish("aging", b"late", None, KEEP_3)  # expires at 1016
    await old.publish("bare", b"no history", None, PublishOptions())
    await old.add_presence("room", ClientInfo("c1", "alice", b'{"n":1}'))
    await old.add_presence("room", ClientInfo("c2", "bob"))
    before = {c: await positions_and_data(old, c) for c in ("kept", "aging", "bare")}

    new_clock = Clock(50.0)  # another process: another clock origin
    new = await started(new_clock)
    await new.publish("stale", b"dropped", None, KEEP_3)  # the new broker held something
    new.restore(through_a_file(old.state()))

    for channel, expected in before.items():
        assert await positions_and_data(new, channel) == expected, channel
    assert (await new.history("stale", None, 0)).position.offset == 0  # replaced, a new stream
    assert await new.presence("room") == await old.presence("room")
    assert set(await new.nodes()) == {"node-a"}
    # The same stream goes on, and the history limit still holds.
    kept = before["kept"][0]
    assert await new.publish("kept", b"5", None, KEEP_3) == StreamPosition(6, kept.epoch)
    result = await new.history("kept", StreamPosition(3, kept.epoch), None)
    assert [p.offset for p in result.publications] == [4, 5, 6]
    # Expiry continues from the time left: 4 s later "early" is gone, "late" is not.
    new_clock.now += 4.0
    aging = await new.history("aging", None, None)
    assert [p.data for p in aging.publications] == [b"late"]
    assert set(await new.nodes()) == {"node-a"}
    new_clock.now += 20.0  # 30 s after the announcement
    assert await new.nodes() == {}
    await old.close()
    await new.close()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc1", "not a msgpack value"),
        (handover_format.msgpack.packb([1, 2]), "a map expected"),
        (handover_format.msgpack.packb({"version": 99}), "version 99, this release reads"),
        (handover_format.msgpack.packb({"streams": []}), "version None"),
    ],
)
def test_a_handover_of_another_kind_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(HandoverRefused, match=reason):
        handover_format.decode(data)


GOOD_STREAM = ["c", "ab12cd34", 2, 0.5, [[5.0, 1, b"x", None], [5.0, 2, b"y", "u"]]]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"streams": "c"}, "streams: a list expected"),
        ({"streams": [["c", "e", "2", 0.0, []]]}, "streams: .* is not a row of 5"),
        ({"streams": [["c", "e", True, 0.0, []]]}, "is not a row"),  # a bool is no offset
        ({"streams": [["c", "", 2, 0.0, []]]}, "epoch ''"),
        ({"streams": [["c", "e", 2, float("nan"), []]]}, "is not a row"),
        ({"streams": [["c", "e", 2, 0.0, [[5.0, 1, "text", None]]]]}, "history of c"),
        ({"streams": [["c", "e", 3, 0.0, [[5.0, 1, b"", None], [5.0, 3, b"", None]]]]},
         "not consecutive"),
        ({"streams": [["c", "e", 1, 0.0, [[5.0, 1, b"", None], [5.0, 2, b"", None]]]]},
         "up to the stream's offset 1"),
        ({"presence": [["room", "c1", None, None]]}, "presence"),
        ({"nodes": [["n", 5.0, "text"]]}, "nodes"),
        ({"workers": [[1, ["c"], [["c"]]]]}, "presence of worker 1"),
        ({"workers": [["1", [], []]]}, "workers"),
        ({"untold": [1]}, "untold"),
    ],
)  # fmt: skip
@run_async(loops=("asyncio",))
async def test_a_state_with_wrong_values_is_refused_and_nothing_changes(change, reason) -> None:
    host = BrokerHost(MemoryBroker(clock=Clock()))
    await host.start()
    state = {"streams": [GOOD_STREAM], "presence": [], "nodes": [], "workers": [], "untold": []}
    host.restore(dict(state), ())  # the good one is taken
    assert (await host.broker.history("c", None, None)).position.offset == 2
    held = host.broker.state()
    with pytest.raises(HandoverRefused, match=reason):
        host.restore({**state, **change}, ())
    assert host.broker.state() == held and host.orphans == {}
    await host.close()


@run_async()
async def test_what_old_workers_held_stays_until_they_exit() -> None:
    old = BrokerHost(MemoryBroker())
    await old.start()
    (one, _, _), (two, _, _) = [await attach(old, n, pid) for n, pid in (("one", 11), ("two", 12))]
    await one.subscribe("c")
    await one.add_presence("c", ClientInfo("x1", "alice"))
    await two.add_presence("c", ClientInfo("y1", "bob"))
    await two.subscribe("d")
    position = await one.publish("c", b"1", None, KEEP_LONG)
    history = await one.history("c", None, None)
    old.freeze()  # from now on requests are refused, and not stored
    with pytest.raises(Exception, match="the master is being replaced"):
        await two.publish("c", b"2", None, KEEP_LONG)
    assert old.flushed()
    state = through_a_file(old.state())

    new = BrokerHost(MemoryBroker())
    await new.start()
    new.restore(state, alive=[11])  # worker 12 is already gone: its holdings go now
    fresh, sink, _ = await attach(new, "fresh", 21)
    try:
        assert set(await fresh.presence("c")) == {"x1"}
        assert await fresh.history("c", None, None) == history
        assert (await fresh.history("c", None, 0)).position == position
        await settle()
        assert sink.events == [("vacated", "d")]  # held by worker 12 alone
        assert await fresh.subscribe("c") is False  # worker 11 still holds it: no new occupancy
        assert await fresh.publish("c", b"2", None, KEEP_LONG) == StreamPosition(2, position.epoch)
        await fresh.unsubscribe("c")
        new.release(11)  # the old worker exited: its clients left, the channel is vacated
        await settle()
        assert await fresh.presence("c") == {}
        assert sink.events[-2:] == [("pub", "c", 2, b"2"), ("vacated", "c")]
    finally:
        for broker in (one, two, fresh):
            await broker.close()
        await old.close()
        await new.close()


async def master_started_with(fd: int, monkeypatch: pytest.MonkeyPatch) -> Supervisor:
    """A master's broker started as after an upgrade that handed over the file ``fd``."""
    monkeypatch.setenv(BROKER_FD_VARIABLE, str(fd))
    master = Supervisor(HubConfig(), HubConfig, socket.socket())
    master.sock.close()
    await master._start_broker()
    return master


@run_async(loops=("asyncio",))
async def test_a_new_master_takes_over_the_state_or_refuses_it_and_starts_empty(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    old = BrokerHost(MemoryBroker())
    await old.start()
    await old.broker.publish("c", b"1", None, KEEP_LONG)
    master = await master_started_with(handover_format.write(old.state()), monkeypatch)
    assert master.host.broker.sizes() == (1, 1, 0)
    assert await master.host.broker.history("c", None, None) == await old.broker.history(
        "c", None, None
    )
    await master.host.close()

    newer = handover_format.msgpack.packb({**old.state(), "version": handover_format.VERSION + 1})
    with tempfile.TemporaryFile() as file:
        file.write(newer)
        file.flush()
        with caplog.at_level("ERROR", logger="fastws.hub"):
            master = await master_started_with(os.dup(file.fileno()), monkeypatch)
    assert master.host.broker.sizes() == (0, 0, 0) and master.host.broker.healthy
    assert "the broker state handed over is refused, starting empty: version" in caplog.text
    await master.host.close()
    await old.close()
