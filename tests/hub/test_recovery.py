"""History and recovery end to end: nothing lost and nothing repeated across a reconnect."""

from __future__ import annotations

import asyncio

import pytest

from fastws.errors import ConnectionClosed
from fastws.hub.broker import HistoryResult, StreamPosition
from fastws.hub.broker.memory import MemoryBroker
from fastws.hub.namespaces import Namespace
from fastws.hub.protocol import codes
from tests.support.hub import SECRET, HubClient, api, running_hub
from tests.support.loops import run_async

STREAMS = Namespace("stream", history_size=1000, history_ttl=60)


class RemoteLikeBroker(MemoryBroker):
    """The memory broker with the latency of a remote one: every call suspends.

    Publications keep flowing while a subscriber reads history, which is the
    case the subscribe sequence (interest first, buffer, history, release) is for.
    """

    inline = False

    def __init__(self) -> None:
        super().__init__()
        self.published_during_history = 0

    async def subscribe(self, channel: str) -> None:
        await asyncio.sleep(0.002)
        await super().subscribe(channel)
        await asyncio.sleep(0.002)

    async def publish(self, channel, data, user, options) -> StreamPosition:
        await asyncio.sleep(0)
        return await super().publish(channel, data, user, options)

    async def history(self, channel, since, limit, reverse=False) -> HistoryResult:
        before = self._streams[channel].offset if channel in self._streams else 0
        await asyncio.sleep(0.005)
        result = await super().history(channel, since, limit, reverse)
        self.published_during_history += result.position.offset - before
        await asyncio.sleep(0.005)  # more arrive after the read: those are buffered
        return result


class LaggingDeliveryBroker(MemoryBroker):
    """The memory broker, remote-like, whose deliveries to the node can be held back
    while history already has them: a busy node behind its pub/sub connection."""

    inline = False

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple] | None = None

    def _deliver(self, callback, *args) -> None:
        if self.held is not None:
            self.held.append((callback, *args))
        else:
            super()._deliver(callback, *args)

    def release(self) -> None:
        held, self.held = self.held or [], None
        for callback, *args in held:
            super()._deliver(callback, *args)


async def publish_many(client: HubClient, channel: str, count: int) -> None:
    for i in range(count):
        await client.result("publish", {"channel": channel, "data": {"i": i}})


@run_async()
async def test_history_reads() -> None:
    async with running_hub() as hub:
        client = await HubClient.open(hub.port)
        await publish_many(client, "room:h", 5)
        history = await client.result("history", {"channel": "room:h"})
        assert history["offset"] == 5 and isinstance(history["epoch"], str)
        assert [p["offset"] for p in history["publications"]] == [1, 2, 3, 4, 5]
        assert history["publications"][0] == {"offset": 1, "data": {"i": 0}, "info": {"user": ""}}
        first_two = await client.result("history", {"channel": "room:h", "limit": 2})
        assert [p["offset"] for p in first_two["publications"]] == [1, 2]
        position_only = await client.result("history", {"channel": "room:h", "limit": 0})
        assert position_only["publications"] == [] and position_only["offset"] == 5
        since = {"epoch": history["epoch"], "offset": 3}
        after = await client.result("history", {"channel": "room:h", "since": since})
        assert [p["offset"] for p in after["publications"]] == [4, 5]
        code, _ = await client.error(
            "history", {"channel": "room:h", "since": {"epoch": "other", "offset": 3}}
        )
        assert code == 410
        await client.close()


@run_async()
async def test_history_and_presence_of_channels_without_them_are_not_available() -> None:
    # 200 commands in a burst: the rate limit is not what this test is about
    async with running_hub(api_key="key", command_rate=1e6, command_burst=100000) as hub:
        client = await HubClient.open(hub.port)
        streams = hub.node.broker.sizes()[0]
        for i in range(100):  # names made up by a client create nothing
            code, message = await client.error("history", {"channel": f"plain:made-up-{i}"})
            assert code == codes.NOT_AVAILABLE and "history" in message
            code, message = await client.error("presence", {"channel": f"plain:made-up-{i}"})
            assert code == codes.NOT_AVAILABLE and "presence" in message
        status, body = await api(hub.port, "GET", "/api/v1/history?channel=plain:made-up")
        assert status == body["error"]["code"] == codes.NOT_AVAILABLE
        assert hub.node.broker.sizes()[0] == streams
        await client.close()


@run_async()
async def test_history_is_bounded_by_size() -> None:
    async with running_hub() as hub:  # room:* keeps 50
        client = await HubClient.open(hub.port)
        await publish_many(client, "room:big", 60)
        history = await client.result("history", {"channel": "room:big"})
        assert [p["offset"] for p in history["publications"]] == list(range(11, 61))
        epoch = history["epoch"]
        too_old = {"epoch": epoch, "offset": 5}
        assert (await client.error("history", {"channel": "room:big", "since": too_old}))[0] == 410
        await client.close()


@run_async()
async def test_subscribe_from_a_position_recovers_exactly_the_missed() -> None:
    async with running_hub() as hub:
        client = await HubClient.open(hub.port)
        first = await client.result("subscribe", {"channel": "room:r"})
        assert first["offset"] == 0 and first["recovered"] is False
        await publish_many(client, "room:r", 3)
        await client.pushes_of("pub", 3)
        await client.result("unsubscribe", {"channel": "room:r"})
        await publish_many(client, "room:r", 4)
        since = {"epoch": first["epoch"], "offset": 3}
        again = await client.result("subscribe", {"channel": "room:r", "since": since})
        assert again["recovered"] is True
        assert again["offset"] == 7 and again["epoch"] == first["epoch"]
        assert [p["offset"] for p in again["publications"]] == [4, 5, 6, 7]
        assert [p["data"]["i"] for p in again["publications"]] == [0, 1, 2, 3]
        await client.pushes_of("join", 1)
        await client.no_more_pushes()
        # Up to date already: recovered, nothing to replay.
        await client.result("unsubscribe", {"channel": "room:r"})
        current = {"epoch": first["epoch"], "offset": 7}
        same = await client.result("subscribe", {"channel": "room:r", "since": current})
        assert same["recovered"] is True and same["publications"] == []
        await client.close()


@run_async()
async def test_history_read_newest_first_by_clients_and_the_api() -> None:
    async with running_hub(api_key="key") as hub:
        client = await HubClient.open(hub.port)
        await publish_many(client, "room:v", 5)
        last = await client.result("history", {"channel": "room:v", "limit": 2, "reverse": True})
        assert [p["offset"] for p in last["publications"]] == [5, 4]
        assert [p["data"]["i"] for p in last["publications"]] == [4, 3]
        before = {"epoch": last["epoch"], "offset": 4}
        page = await client.result(
            "history", {"channel": "room:v", "since": before, "limit": 2, "reverse": True}
        )
        assert [p["offset"] for p in page["publications"]] == [3, 2]
        code, _ = await client.error(
            "history", {"channel": "room:v", "since": {**before, "epoch": "x"}, "reverse": True}
        )
        assert code == 410
        code, message = await client.error("history", {"channel": "room:v", "reverse": 1})
        assert code == 400 and "reverse" in message
        status, body = await api(hub.port, "GET", "/api/v1/history?channel=room:v&reverse=true")
        assert status == 200
        assert [p["offset"] for p in body["result"]["publications"]] == [5, 4, 3, 2, 1]
        status, body = await api(hub.port, "GET", "/api/v1/history?channel=room:v&reverse=no")
        assert status == 400 and "reverse" in body["error"]["message"]
        await client.close()


@pytest.mark.parametrize(
    ("since", "why"),
    [
        ({"epoch": "nope", "offset": 1}, "another epoch"),
        ({"offset": 2}, "older than history holds"),
        ({"offset": 99}, "in the future"),
    ],
)
@run_async()
async def test_unrecoverable_positions_say_recovered_false(since: dict, why: str) -> None:
    async with running_hub() as hub:
        client = await HubClient.open(hub.port)
        await publish_many(client, "room:u", 55)  # history keeps offsets 6..55
        epoch = (await client.result("history", {"channel": "room:u", "limit": 0}))["epoch"]
        since = {"epoch": epoch, **since}
        reply = await client.result("subscribe", {"channel": "room:u", "since": since})
        assert reply["recovered"] is False, why
        assert reply["publications"] == []
        assert reply["epoch"] == epoch and reply["offset"] == 55
        await client.close()


@run_async()
async def test_channel_without_history_recovers_only_when_nothing_was_missed() -> None:
    async with running_hub() as hub:
        client = await HubClient.open(hub.port)
        await publish_many(client, "plain:p", 2)
        current = await client.result("subscribe", {"channel": "plain:p"})
        epoch = current["epoch"]
        assert current["offset"] == 2
        await client.result("unsubscribe", {"channel": "plain:p"})
        reply = await client.result(
            "subscribe", {"channel": "plain:p", "since": {"epoch": epoch, "offset": 2}}
        )
        assert reply["recovered"] is True
        await client.result("unsubscribe", {"channel": "plain:p"})
        reply = await client.result(
            "subscribe", {"channel": "plain:p", "since": {"epoch": epoch, "offset": 1}}
        )
        assert reply["recovered"] is False
        await client.close()


@run_async()
async def test_a_new_broker_means_a_new_epoch() -> None:
    epochs = []
    for _ in range(2):
        async with running_hub() as hub:
            client = await HubClient.open(hub.port)
            await client.result("publish", {"channel": "room:e", "data": 1})
            epochs.append((await client.result("history", {"channel": "room:e"}))["epoch"])
            await client.close()
    assert epochs[0] != epochs[1]


async def cut_off_mid_stream(broker: MemoryBroker | None) -> None:
    """A subscriber loses its connection while a publisher keeps going; it comes back
    from its last offset and must see every offset once, in order."""
    total = 150
    channel = "stream:1"
    async with running_hub(broker=broker, namespaces=[STREAMS]) as hub:
        port = hub.port
        publisher = await HubClient.open(port)
        subscriber = await HubClient.open(port)
        reply = await subscriber.result("subscribe", {"channel": channel})
        epoch, seen = reply["epoch"], []

        async def publish_all() -> None:
            for i in range(total):
                await publisher.result("publish", {"channel": channel, "data": i})
                if i % 10 == 0:
                    await asyncio.sleep(0.001)

        publishing = asyncio.create_task(publish_all())
        try:
            while len(seen) < 20:
                push = await subscriber.push()
                if push["push"] == "pub":
                    seen.append(push["offset"])
            subscriber.ws.transport.abort()  # the network drops; pushes in flight are lost
            await asyncio.sleep(0.01)
            back = await HubClient.open(port)
            since = {"epoch": epoch, "offset": seen[-1]}
            reply = await back.result("subscribe", {"channel": channel, "since": since})
            assert reply["recovered"] is True and reply["epoch"] == epoch
            seen += [p["offset"] for p in reply["publications"]]
            while seen[-1] < total:
                push = await back.push()
                if push["push"] == "pub":
                    seen.append(push["offset"])
        finally:
            await publishing
        assert seen == list(range(1, total + 1))
        await back.no_more_pushes()
        for client in (publisher, back):
            await client.close()


@run_async()
async def test_cut_off_mid_stream_recovers_exactly_the_gap() -> None:
    await cut_off_mid_stream(None)


@run_async()
async def test_cut_off_mid_stream_with_a_broker_that_suspends() -> None:
    broker = RemoteLikeBroker()
    await cut_off_mid_stream(broker)
    # The race the buffering exists for did happen.
    assert broker.published_during_history > 0


@run_async()
async def test_many_subscribers_join_while_publishing_with_a_broker_that_suspends() -> None:
    """Subscribers arriving from a position while publications flow each get every offset."""
    broker = RemoteLikeBroker()
    total = 80
    async with running_hub(broker=broker, namespaces=[STREAMS]) as hub:
        publisher = await HubClient.open(hub.port)
        await publisher.result("publish", {"channel": "stream:m", "data": 0})
        epoch = (await publisher.result("history", {"channel": "stream:m", "limit": 0}))["epoch"]

        async def publish_all() -> None:
            for i in range(1, total):
                await publisher.result("publish", {"channel": "stream:m", "data": i})

        async def follow(delay: float) -> list[int]:
            await asyncio.sleep(delay)
            client = await HubClient.open(hub.port)
            since = {"epoch": epoch, "offset": 0}
            reply = await client.result("subscribe", {"channel": "stream:m", "since": since})
            assert reply["recovered"] is True
            offsets = [p["offset"] for p in reply["publications"]]
            while not offsets or offsets[-1] < total:
                push = await client.push()
                if push["push"] == "pub":
                    offsets.append(push["offset"])
            await client.close()
            return offsets

        publishing = asyncio.create_task(publish_all())
        results = await asyncio.gather(*(follow(0.003 * i) for i in range(6)))
        await publishing
        for offsets in results:
            assert offsets == list(range(1, total + 1))
        await publisher.close()


@run_async()
async def test_unsubscribe_while_subscribing_with_a_broker_that_suspends() -> None:
    async with running_hub(broker=RemoteLikeBroker()) as hub:
        client = await HubClient.open(hub.port)
        subscribing = client.send_command("subscribe", {"channel": "room:s"})
        leaving = client.send_command("unsubscribe", {"channel": "room:s"})
        assert (await client.reply(leaving))["result"] == {}
        assert "result" in await client.reply(subscribing)
        await client.result("publish", {"channel": "room:s", "data": 1})
        await client.no_more_pushes()  # neither the publication nor a join
        assert "room:s" not in hub.node.channels
        assert await client.result("presence", {"channel": "room:s"}) == {"clients": {}}
        # And it can subscribe again normally.
        await client.result("subscribe", {"channel": "room:s"})
        await client.pushes_of("join", 1)
        await client.close()


@run_async()
async def test_commands_sent_right_after_connect_wait_for_it_with_a_broker_that_suspends() -> None:
    async with running_hub(broker=RemoteLikeBroker()) as hub:
        client = await HubClient.open(hub.port, connect=False)
        connecting = client.send_command("connect", {})
        subscribing = client.send_command("subscribe", {"channel": "room:p"})
        publishing = client.send_command("publish", {"channel": "room:p", "data": 1})
        again = client.send_command("connect", {})
        assert "client" in (await client.reply(connecting))["result"]
        # Both run after the connect; with a remote broker they run side by side.
        assert (await client.reply(subscribing))["result"]["offset"] in (0, 1)
        assert (await client.reply(publishing))["result"]["offset"] == 1
        assert (await client.reply(again))["error"]["message"] == "already connected"
        assert "room:p" in hub.node.channels
        await client.close()


@run_async()
async def test_commands_after_a_failed_connect_do_not_run() -> None:
    async with running_hub(broker=RemoteLikeBroker(), jwt_secret=SECRET) as hub:
        client = await HubClient.open(hub.port, connect=False)
        client.send_command("connect", {"token": "not a token"})
        client.send_command("subscribe", {"channel": "room:p"})
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await client.ws.recv()
        assert closed.value.code == 4500
        assert "room:p" not in hub.node.channels


@run_async()
async def test_a_reply_ahead_of_the_nodes_deliveries_is_not_pushed_again() -> None:
    """A subscriber answered from history at a position the node's deliveries have not
    reached gets the rest live, not the reply's publications a second time; the
    subscribers already live still get those."""
    broker = LaggingDeliveryBroker()
    channel = "stream:lag"
    async with running_hub(broker=broker, namespaces=[STREAMS]) as hub:
        live = await HubClient.open(hub.port)
        first = await live.result("subscribe", {"channel": channel})
        await publish_many(live, channel, 1)
        assert [p["offset"] for p in await live.pushes_of("pub", 1)] == [1]
        broker.held = []  # 2 and 3 reach history, not yet the node
        await publish_many(live, channel, 2)
        late = await HubClient.open(hub.port)
        since = {"epoch": first["epoch"], "offset": 1}
        reply = await late.result("subscribe", {"channel": channel, "since": since})
        assert reply["recovered"] is True and reply["offset"] == 3
        assert [p["offset"] for p in reply["publications"]] == [2, 3]
        broker.release()
        await publish_many(live, channel, 1)
        assert [p["offset"] for p in await live.pushes_of("pub", 3)] == [2, 3, 4]
        assert [p["offset"] for p in await late.pushes_of("pub", 1)] == [4]
        for client in (live, late):
            await client.no_more_pushes()
            await client.close()
