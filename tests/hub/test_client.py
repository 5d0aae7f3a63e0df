"""The hub client against the real hub (``python -m fastws`` as a child process).

Failures the hub cannot be asked for (a hub that stops answering pings, or
closes with a chosen code) come from a few lines of scripted server instead.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import fields, replace

import orjson
import pytest

import fastws
from fastws.errors import WebSocketError
from fastws.hub.broker import StreamPosition as BrokerStreamPosition
from fastws.hub.client import (
    Client,
    CommandTimeout,
    Disconnected,
    HubError,
    Message,
    ReceivedClientInfo,
    ReceivedPublication,
    StreamPosition,
    backoff_delay,
    may_reconnect,
)
from fastws.hub.protocol import codes
from tests.support.hubprocess import HubProcess, dev_token, token_source
from tests.support.loops import run_async
from tests.support.net import free_port
from tests.support.polling import until


@pytest.fixture(scope="module")
def hub():
    with HubProcess() as process:
        yield process


def url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/connection"


async def take(sub, count: int, timeout: float = 10.0) -> list[ReceivedPublication]:
    items = []
    async with asyncio.timeout(timeout):
        async for pub in sub:
            items.append(pub)
            if len(items) == count:
                break
    return items


class MaxJitter:
    """An RNG stand-in that always picks the top of the window (and records it)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.windows: list[float] = []
        self.scale = scale

    def uniform(self, low: float, high: float) -> float:
        self.windows.append(high)
        return high * self.scale


# -- backoff ---------------------------------------------------------------------------------


def test_backoff_is_full_jitter_over_a_growing_window() -> None:
    rng = random.Random(1234)
    delays = [backoff_delay(a, base=0.5, factor=2, maximum=20, rng=rng) for a in range(12)]
    expected_rng = random.Random(1234)
    windows = [0.5, 1, 2, 4, 8, 16, 20, 20, 20, 20, 20, 20]
    assert delays == [expected_rng.uniform(0, w) for w in windows]
    assert all(0 <= d <= w for d, w in zip(delays, windows, strict=True))


def test_backoff_window_grows_then_caps() -> None:
    top = MaxJitter()
    delays = [backoff_delay(a, base=0.5, factor=2, maximum=20, rng=top) for a in range(8)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 20, 20]
    assert backoff_delay(10_000, base=0.5, factor=2, maximum=20, rng=top) == 20  # no overflow


def test_backoff_jitter_spreads_over_the_whole_window() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(6, base=0.5, factor=2, maximum=20, rng=rng) for _ in range(2000)]
    assert min(delays) < 1 and max(delays) > 19 and all(0 <= d <= 20 for d in delays)
    assert 8 < sum(delays) / len(delays) < 12  # uniform on [0, 20]


def test_close_codes_that_forbid_reconnecting() -> None:
    assert [c for c in (1000, 1001, 1006, 1011, 1012, 4000, 4010, 4499) if not may_reconnect(c)] == []
    assert all(not may_reconnect(c) for c in (4500, 4501, 4502, 4503, 4999))


def test_errors_are_websocket_errors() -> None:
    assert issubclass(HubError, WebSocketError)
    timeout = CommandTimeout("publish", 1.5)
    assert isinstance(timeout, HubError) and isinstance(timeout, TimeoutError)
    assert timeout.code == 408 and "publish" in str(timeout) and "1.5" in str(timeout)
    with pytest.raises(ValueError):
        Client("ws://x/", subprotocol="fastws.xml")


def test_one_stream_position_for_the_client_and_the_server() -> None:
    assert StreamPosition is BrokerStreamPosition
    assert [f.name for f in fields(StreamPosition)] == ["offset", "epoch"]
    assert StreamPosition(7, "e1").to_wire() == {"offset": 7, "epoch": "e1"}


# -- commands against the hub ------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", ["fastws.json", "fastws.msgpack", "fastws.protobuf"])
@run_async()
async def test_subscribe_publish_send_presence_history(hub, subprotocol: str) -> None:
    channel = f"chat:basics-{subprotocol.split('.')[1]}-{random.getrandbits(32)}"
    async with (
        Client(url(hub.port), token=token_source(hub.port, "ann"), subprotocol=subprotocol) as ann,
        Client(url(hub.port), token=token_source(hub.port, "bob"), subprotocol=subprotocol) as bob,
    ):
        assert ann.user == "ann" and ann.client_id and ann.state == "connected"
        sub_ann = await ann.subscribe(channel)
        sub_bob = await bob.subscribe(channel)
        offsets = [await ann.publish(channel, {"n": i, "text": "é€😀"}) for i in range(3)]
        assert offsets == sorted(offsets) and len(set(offsets)) == 3
        for sub in (sub_ann, sub_bob):
            pubs = await take(sub, 3)
            assert [p.data["n"] for p in pubs] == [0, 1, 2]
            assert [p.offset for p in pubs] == offsets
            assert {p.user for p in pubs} == {"ann"} and not any(p.recovered for p in pubs)
        assert sub_bob.position == StreamPosition(offsets[-1], sub_bob.epoch)

        presence = await bob.presence(channel)
        assert presence[ann.client_id] == ReceivedClientInfo(
            ann.client_id, "ann", presence[ann.client_id].info
        )
        assert {info.user for info in presence.values()} == {"ann", "bob"}

        history = await bob.history(channel)
        assert [p.data["n"] for p in history.publications] == [0, 1, 2]
        assert history.epoch == sub_bob.epoch and history.offset == offsets[-1]
        since = await bob.history(channel, since=StreamPosition(offsets[0], history.epoch))
        assert [p.offset for p in since.publications] == offsets[1:]
        earlier = replace(sub_bob.position, offset=offsets[0])
        one = await bob.history(channel, since=earlier, limit=1)
        assert [p.offset for p in one.publications] == offsets[1:2]
        newest = await sub_bob.history(limit=2, reverse=True)
        assert [p.offset for p in newest.publications] == offsets[:0:-1]
        older = await bob.history(channel, since=sub_bob.position, reverse=True)
        assert [p.offset for p in older.publications] == offsets[-2::-1]

        await bob.send("ann", {"text": "psst"})
        async with asyncio.timeout(10):
            message = await anext(ann.messages())
        assert message == Message("bob", {"text": "psst"})

        await sub_bob.unsubscribe()
        assert channel not in bob.subscriptions
        assert [p async for p in sub_bob] == []  # the iterator ended
        await ann.publish(channel, "after")
        assert (await take(sub_ann, 1))[0].data == "after"
        await bob.ping()


@run_async()
async def test_callbacks_run_in_order_and_may_await_commands(hub) -> None:
    channel = f"chat:callbacks-{random.getrandbits(32)}"
    events: list = []
    echoed = asyncio.Event()

    async def on_publication(pub: ReceivedPublication) -> None:
        events.append(("pub", pub.data))
        if pub.data == "ping":
            await ann.publish(channel, "pong")  # a callback may use the client
        if pub.data == "pong":
            echoed.set()

    async with (
        Client(url(hub.port), token=token_source(hub.port, "ann")) as ann,
        Client(url(hub.port), token=token_source(hub.port, "bob")) as bob,
    ):
        await ann.subscribe(
            channel,
            on_publication,
            on_join=lambda info: events.append(("join", info.user)),
            on_leave=lambda info: events.append(("leave", info.user)),
        )
        sub_bob = await bob.subscribe(channel)
        await bob.publish(channel, "ping")
        async with asyncio.timeout(10):
            await echoed.wait()
        await sub_bob.unsubscribe()
        await until(lambda: ("leave", "bob") in events, "leave push")
    assert events == [
        ("join", "ann"),
        ("join", "bob"),
        ("pub", "ping"),
        ("pub", "pong"),
        ("leave", "bob"),
    ]


@run_async()
async def test_hub_errors_raise_hub_error(hub) -> None:
    async with Client(url(hub.port), token=token_source(hub.port, "ann")) as client:
        with pytest.raises(HubError) as info:
            await client.subscribe("no spaces allowed")
        assert info.value.code == 400
        assert "no spaces allowed" not in client.subscriptions
        await client.subscribe("chat:twice")
        with pytest.raises(HubError) as info:
            await client.subscribe("chat:twice")
        assert info.value.code == 409
        with pytest.raises(HubError) as info:
            await client.presence("no-presence-here")  # the default namespace keeps none
        assert info.value.code == codes.NOT_AVAILABLE
        with pytest.raises(HubError) as info:
            await client.presence("news:no-such-namespace")
        assert info.value.code == codes.NOT_FOUND
        with pytest.raises(HubError) as info:
            await client.history("chat:twice", since=StreamPosition(3, "not-the-epoch"))
        assert info.value.code == 410
        with pytest.raises(TypeError):
            await client.publish("chat:twice", object())  # no JSON form
        await client.ping()  # still connected


@run_async()
async def test_a_bad_token_fails_connect(hub) -> None:
    client = Client(url(hub.port), token="not-a-jwt")
    with pytest.raises(HubError) as info:
        await client.connect()
    assert info.value.code == 401 or 4500 <= info.value.code <= 4999
    assert client.state == "disconnected"
    await client.close()


# -- reconnecting ----------------------------------------------------------------------------------


@run_async()
async def test_cut_socket_resubscribes_and_recovers_exactly_the_missed(hub) -> None:
    channel = f"chat:recover-{random.getrandbits(32)}"
    gate = asyncio.Event()
    calls = 0

    async def gated_token() -> str:
        """Hold the reconnect (at its token) until the test has published."""
        nonlocal calls
        calls += 1
        if calls > 1:
            await gate.wait()
        return await dev_token(hub.port, "bob")

    async with (
        Client(url(hub.port), token=token_source(hub.port, "ann")) as ann,
        Client(url(hub.port), token=gated_token, backoff_base=0.05) as bob,
    ):
        resyncs: list = []
        sub = await bob.subscribe(channel, on_resync=resyncs.append)
        await ann.publish(channel, "before")
        assert [p.data for p in await take(sub, 1)] == ["before"]

        bob.drop()
        await until(lambda: calls == 2, "a reconnect attempt")
        assert bob.state == "connecting"
        missed = [await ann.publish(channel, f"missed {i}") for i in range(5)]
        gate.set()
        await until(lambda: bob.state == "connected", "reconnect")
        await ann.publish(channel, "live")

        pubs = await take(sub, 6)
        assert [p.data for p in pubs] == [f"missed {i}" for i in range(5)] + ["live"]
        assert [p.offset for p in pubs[:5]] == missed
        assert [p.recovered for p in pubs] == [True] * 5 + [False]
        assert sub.recovered is True and resyncs == [] and bob.reconnects == 1
        await asyncio.sleep(0.1)
        assert len(sub._inbox) == 0  # nothing delivered twice


@run_async(timeout=60)
async def test_exactly_once_in_order_through_repeated_drops(hub) -> None:
    channel = f"chat:storm-{random.getrandbits(32)}"
    total = 300
    async with (
        Client(url(hub.port), token=token_source(hub.port, "ann")) as ann,
        Client(url(hub.port), token=token_source(hub.port, "bob"), backoff_base=0.05) as bob,
    ):
        sub = await bob.subscribe(channel)

        async def publisher() -> None:
            for i in range(total):
                await ann.publish(channel, i)
                await asyncio.sleep(0.012)  # under the hub's 100 commands/s per connection

        task = asyncio.create_task(publisher())
        received: list[ReceivedPublication] = []
        async with asyncio.timeout(45):
            async for pub in sub:
                received.append(pub)
                if len(received) in (40, 90, 150, 220):
                    bob.drop()
                if len(received) == total:
                    break
        await task
        assert [p.data for p in received] == list(range(total))
        assert [p.offset for p in received] == sorted({p.offset for p in received})
        assert bob.reconnects >= 3 and sub.resyncs == 0
        assert any(p.recovered for p in received)


@run_async(timeout=90, loops=("uvloop",))
async def test_hub_killed_and_restarted_on_the_same_port() -> None:
    with HubProcess() as hub:
        channel = f"chat:restart-{random.getrandbits(32)}"
        windows = MaxJitter(scale=0.05)
        disconnects: list = []
        resynced: list = []
        async with Client(
            url(hub.port),
            token=token_source(hub.port, "bob"),
            rng=windows,
            on_disconnect=lambda code, reason, again: disconnects.append((code, again)),
        ) as bob:
            sub = await bob.subscribe(channel, on_resync=resynced.append)
            await bob.publish(channel, "before the crash")
            assert (await take(sub, 1))[0].data == "before the crash"
            epoch = sub.epoch

            hub.kill()
            await until(lambda: len(windows.windows) >= 5, "five reconnect attempts")
            assert bob.state in ("connecting", "disconnected")
            # Full jitter over a window that doubles per attempt: 0.5, 1, 2, 4, 8 ...
            assert windows.windows[:5] == [0.5, 1, 2, 4, 8]
            await asyncio.to_thread(hub.start)

            await until(
                lambda: bob.state == "connected" and sub.recovered is not None,
                "reconnect after the restart",
                timeout=30,
            )
            assert sub.recovered is False and resynced == [sub] and sub.resyncs == 1
            assert sub.epoch != epoch  # the restarted hub's memory is a new stream
            assert disconnects == [(1006, True)]
            async with Client(url(hub.port), token=token_source(hub.port, "ann")) as ann:
                await ann.publish(channel, "after the restart")
            pub = (await take(sub, 1))[0]
            assert pub.data == "after the restart" and pub.user == "ann" and not pub.recovered


@run_async()
async def test_a_refused_token_on_reconnect_stops_reconnecting(hub) -> None:
    calls = 0

    async def token() -> str:
        nonlocal calls
        calls += 1
        return await dev_token(hub.port, "ann") if calls == 1 else "revoked"

    async with Client(url(hub.port), token=token, backoff_base=0.01) as client:
        sub = await client.subscribe("chat:revoked")
        client.drop()
        await until(lambda: client.state == "disconnected" and calls == 2, "giving up")
        await asyncio.sleep(0.3)  # time for many retries, were there any
        assert calls == 2
        with pytest.raises(HubError) as info:
            await anext(aiter(sub))
        assert info.value.code == 401
        with pytest.raises(HubError):
            await client.publish("chat:revoked", "x")


# -- failures scripted by a minimal server ------------------------------------------------------------


class ScriptedHub:
    """Answers ``connect`` and ``subscribe`` like a hub; ``after(ws, number, method)`` does the rest.

    Methods in ``silent`` go unanswered.
    """

    def __init__(self, after=None, answer_pings: bool = True, silent: frozenset = frozenset()) -> None:
        self.after = after
        self.answer_pings = answer_pings
        self.silent = silent
        self.connections: list[fastws.WebSocket] = []

    async def handler(self, ws: fastws.WebSocket) -> None:
        self.connections.append(ws)
        number = len(self.connections)
        async for raw in ws:
            command = orjson.loads(raw)
            method, command_id = command["method"], command["id"]
            result = None
            if method == "connect":
                result = {"client": f"c{number}", "user": "u", "ping": 1}
            elif method == "subscribe":
                result = {"epoch": "e", "offset": 0, "recovered": False, "publications": []}
            elif method == "ping" and self.answer_pings:
                result = {}
            if result is not None and method not in self.silent:  # anything else goes unanswered
                await ws.send(orjson.dumps({"id": command_id, "result": result}).decode())
            if self.after is not None:
                await self.after(ws, number, method)

    def serve(self):
        return fastws.serve(self.handler, "127.0.0.1", 0)


@pytest.mark.parametrize(
    "code, reconnects",
    [(4500, False), (4501, False), (4503, False), (4999, False),
     (4000, True), (4499, True), (1001, True), (1012, True)],
)
@run_async()
async def test_close_codes_decide_reconnecting(code: int, reconnects: bool) -> None:
    async def close_after_subscribe(ws, number, method):
        if number == 1 and method == "subscribe":
            await ws.close(code, "scripted")

    scripted = ScriptedHub(close_after_subscribe)
    async with scripted.serve() as server:
        seen: list = []
        client = Client(
            f"ws://127.0.0.1:{server.port}/",
            backoff_base=0.01,
            on_disconnect=lambda *args: seen.append(args),
        )
        await client.connect()
        sub = await client.subscribe("chat:x")
        if reconnects:
            await until(
                lambda: client.state == "connected" and len(scripted.connections) == 2,
                "the reconnect",
            )
            assert seen == [(code, "scripted", True)]
        else:
            await until(lambda: client.state == "disconnected", "the close")
            await asyncio.sleep(0.2)  # many backoff windows of 10 ms
            assert len(scripted.connections) == 1 and seen == [(code, "scripted", False)]
            assert client.close_code == code
            with pytest.raises(Disconnected) as info:
                await anext(aiter(sub))
            assert info.value.code == code and not info.value.reconnect
            with pytest.raises(Disconnected):
                await client.ping()
        await client.close()


@run_async()
async def test_a_disconnect_push_decides_over_the_close_frame() -> None:
    async def push_then_close(ws, number, method):
        if number == 1 and method == "connect":
            push = {"push": "disconnect", "code": 4503, "reason": "bye", "reconnect": False}
            await ws.send(orjson.dumps(push).decode())
            await ws.close(1000)

    scripted = ScriptedHub(push_then_close)
    async with scripted.serve() as server:
        async with Client(f"ws://127.0.0.1:{server.port}/", backoff_base=0.01) as client:
            await until(lambda: client.state == "disconnected", "the close")
            await asyncio.sleep(0.1)
            assert len(scripted.connections) == 1
            assert (client.close_code, client.close_reason) == (4503, "bye")


@run_async()
async def test_unanswered_pings_mean_a_dead_hub() -> None:
    scripted = ScriptedHub(answer_pings=False)
    async with scripted.serve() as server:
        disconnects: list = []
        async with Client(
            f"ws://127.0.0.1:{server.port}/",
            ping_interval=0.1,
            ping_timeout=0.2,
            backoff_base=0.01,
            on_disconnect=lambda *args: disconnects.append(args[0]),
        ) as client:
            await until(lambda: len(scripted.connections) >= 2, "a reconnect")
            # The hub sees the new connection before the client has counted it.
            await until(lambda: client.reconnects >= 1, "the client counting its reconnect")
            assert disconnects[0] == 1006  # the client dropped the silent connection


@run_async()
async def test_commands_time_out_with_a_clear_error() -> None:
    scripted = ScriptedHub()
    async with scripted.serve() as server:
        async with Client(f"ws://127.0.0.1:{server.port}/", command_timeout=0.2) as client:
            with pytest.raises(CommandTimeout) as info:
                await client.publish("chat:x", "into the void")
            assert info.value.code == 408 and "'publish'" in str(info.value)
            assert client._session.pending == {}  # the abandoned command is forgotten
            await client.ping()  # the connection itself is fine


@pytest.mark.parametrize("method", ["connect", "subscribe", "unsubscribe", "publish"])
@run_async()
async def test_every_command_times_out_as_command_timeout(method: str) -> None:
    scripted = ScriptedHub(silent=frozenset({method}))
    async with scripted.serve() as server:
        client = Client(f"ws://127.0.0.1:{server.port}/", command_timeout=0.2)
        with pytest.raises(CommandTimeout) as info:
            await client.connect()
            if method in ("subscribe", "unsubscribe"):
                sub = await client.subscribe("chat:x")
                await sub.unsubscribe()
            await client.publish("chat:x", "into the void")
        assert info.value.code == 408 and f"{method!r}" in str(info.value)
        assert client.subscriptions == {}
        await client.close()


@run_async()
async def test_connect_fails_when_nobody_listens() -> None:
    client = Client(f"ws://127.0.0.1:{free_port()}/")
    with pytest.raises(Disconnected):
        await client.ping()  # before connect()
    results = await asyncio.gather(
        client.connect(), client.connect(), client.ping(), return_exceptions=True
    )
    assert all(isinstance(r, ConnectionRefusedError) for r in results), results
    assert client.state == "disconnected"
    await client.close()
    with pytest.raises(Disconnected):
        await client.connect()  # closed for good


@run_async()
async def test_disconnect_by_the_api_is_final(hub) -> None:
    seen: list = []
    mallory = await dev_token(hub.port, "mallory")
    async with Client(
        url(hub.port),
        token=lambda: mallory,  # a plain callable works too
        backoff_base=0.01,
        on_disconnect=lambda *args: seen.append(args),
    ) as client:
        sub = await client.subscribe("chat:api")
        status, body = await hub.api(
            "POST", "/api/v1/disconnect", {"user": "mallory", "reason": "banned"}
        )
        assert status == 200, body
        await until(lambda: client.state == "disconnected", "the disconnect")
        await asyncio.sleep(0.2)
        assert seen == [(4503, "banned", False)] and client.reconnects == 0
        with pytest.raises(Disconnected) as info:
            await anext(aiter(sub))
        assert info.value.code == 4503
