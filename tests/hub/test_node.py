"""The hub node end to end: fan-out, private messages, presence, join/leave, limits."""

from __future__ import annotations

import asyncio
import contextlib

import orjson

from fastws.codec import OP_TEXT, FrameParser, build_frame
from fastws.hub.namespaces import Namespace
from fastws.hub.node import Node
from fastws.hub.protocol import codes
from tests.support.hub import SECRET, HubClient, api, running_hub, token
from tests.support.loops import run_async


@run_async()
async def test_publication_reaches_every_subscriber_exactly_once() -> None:
    async with running_hub() as hub:
        port = hub.port
        json_sub = await HubClient.open(port)
        msgpack_sub = await HubClient.open(port, binary=True)
        other = await HubClient.open(port)
        publisher = await HubClient.open(port)
        await json_sub.result("subscribe", {"channel": "plain:a"})
        await msgpack_sub.result("subscribe", {"channel": "plain:a"})
        await other.result("subscribe", {"channel": "plain:b"})
        for i in range(1, 6):
            result = await publisher.result("publish", {"channel": "plain:a", "data": {"n": i}})
            assert result == {"offset": i}
        for client in (json_sub, msgpack_sub):
            pushes = [await client.push() for _ in range(5)]
            assert pushes == [
                {
                    "push": "pub",
                    "channel": "plain:a",
                    "offset": i,
                    "data": {"n": i},
                    "info": {"user": ""},
                }
                for i in range(1, 6)
            ]
            await client.no_more_pushes()
        await other.no_more_pushes()
        await publisher.no_more_pushes()  # not subscribed: nothing comes back
        for client in (json_sub, msgpack_sub, other, publisher):
            await client.close()


@run_async()
async def test_unsubscribe_stops_pushes_and_channels_are_forgotten() -> None:
    async with running_hub() as hub:
        client = await HubClient.open(hub.port)
        await client.result("subscribe", {"channel": "plain:a"})
        assert "plain:a" in hub.node.channels
        assert await client.result("unsubscribe", {"channel": "plain:a"}) == {}
        assert "plain:a" not in hub.node.channels
        await client.result("publish", {"channel": "plain:a", "data": 1})
        await client.no_more_pushes()
        # Unsubscribing from a channel one is not in is harmless.
        assert await client.result("unsubscribe", {"channel": "plain:zzz"}) == {}
        await client.close()
        await asyncio.sleep(0.05)
        assert not hub.node.sessions and not hub.node.channels


@run_async()
async def test_private_message_reaches_every_connection_of_the_user() -> None:
    async with running_hub(jwt_secret=SECRET) as hub:
        port = hub.port
        claims = {"send": ["*"]}
        alice1 = await HubClient.open(port, token=token("alice", **claims))
        alice2 = await HubClient.open(port, token=token("alice", **claims), binary=True)
        bob = await HubClient.open(port, token=token("bob", **claims))
        assert await bob.result("send", {"user": "alice", "data": {"hi": 1}}) == {}
        for client in (alice1, alice2):
            assert await client.push() == {"push": "message", "from": "bob", "data": {"hi": 1}}
            await client.no_more_pushes()
        await bob.no_more_pushes()
        # A user with no connection: nothing happens, no error.
        assert await bob.result("send", {"user": "nobody", "data": 1}) == {}
        code, _ = await bob.error("send", {"user": "", "data": 1})
        assert code == 400
        for client in (alice1, alice2, bob):
            await client.close()


@run_async()
async def test_presence_join_and_leave() -> None:
    async with running_hub(jwt_secret=SECRET) as hub:
        port = hub.port
        claims = {"channels": ["room:*", "plain:*"], "presence": ["room:*", "plain:*"]}
        alice = await HubClient.open(port, token=token("alice", info={"name": "Alice"}, **claims))
        bob = await HubClient.open(port, token=token("bob", **claims))
        await alice.result("subscribe", {"channel": "room:1"})
        own = await alice.push()
        assert own["push"] == "join" and own["info"]["client"] == alice.client_id
        await bob.result("subscribe", {"channel": "room:1"})
        join = await alice.push()
        assert join == {
            "push": "join",
            "channel": "room:1",
            "info": {"client": bob.client_id, "user": "bob"},
        }
        presence = await bob.result("presence", {"channel": "room:1"})
        assert presence == {
            "clients": {
                alice.client_id: {"user": "alice", "info": {"name": "Alice"}},
                bob.client_id: {"user": "bob"},
            }
        }
        await bob.result("unsubscribe", {"channel": "room:1"})
        leave = await alice.push()
        assert leave == {
            "push": "leave",
            "channel": "room:1",
            "info": {"client": bob.client_id, "user": "bob"},
        }
        await bob.result("subscribe", {"channel": "room:1"})
        assert (await alice.push())["push"] == "join"
        await bob.close()  # leaving by disconnecting
        leave = await alice.push()
        assert leave["push"] == "leave" and leave["info"]["client"] == bob.client_id
        presence = await alice.result("presence", {"channel": "room:1"})
        assert list(presence["clients"]) == [alice.client_id]
        # Channels without presence say so.
        code, message = await alice.error("presence", {"channel": "plain:1"})
        assert code == codes.NOT_AVAILABLE and "presence" in message
        await alice.close()


@run_async()
async def test_command_rate_limit_then_disconnect() -> None:
    async with running_hub(command_rate=0.01, command_burst=3, max_rejected_commands=4) as hub:
        client = await HubClient.open(hub.port)  # connect takes one token
        ids = [client.send_command("ping") for _ in range(5)]
        replies = [await client.reply(i) for i in ids]
        assert [r.get("result") for r in replies[:2]] == [{}, {}]
        for reply in replies[2:]:
            assert reply["error"]["code"] == 429
        client.send_command("ping")
        push = await client.push()
        assert push == {
            "push": "disconnect",
            "code": 4029,
            "reason": "too many requests",
            "reconnect": True,
        }
        assert (await client.closed())[0] == 4029


@run_async()
async def test_max_subscriptions() -> None:
    async with running_hub(max_subscriptions=2) as hub:
        client = await HubClient.open(hub.port)
        await client.result("subscribe", {"channel": "plain:1"})
        await client.result("subscribe", {"channel": "plain:2"})
        code, message = await client.error("subscribe", {"channel": "plain:3"})
        assert code == 429 and "2" in message
        await client.result("unsubscribe", {"channel": "plain:1"})
        await client.result("subscribe", {"channel": "plain:3"})
        assert (await client.error("subscribe", {"channel": "plain:3"}))[0] == 409
        await client.close()


@run_async()
async def test_bad_commands_get_errors() -> None:
    async with running_hub(max_message_size=1024) as hub:
        client = await HubClient.open(hub.port)
        for channel in ["", "x" * 256, "bad channel", "chat:*", "é", 7, None]:
            code, _ = await client.error("subscribe", {"channel": channel})
            assert code == 400, channel
        assert (await client.error("subscribe", {"channel": "ok", "extra": 1}))[0] == 400
        assert (await client.error("subscribe", {}))[0] == 400
        assert (await client.error("publish", {"channel": "ok"}))[0] == 400
        assert (await client.error("subscribe", {"channel": "ok", "since": {"epoch": 1}}))[0] == 400
        assert (await client.error("history", {"channel": "ok", "limit": -1}))[0] == 400
        assert (await client.error("ping", {"x": 1}))[0] == 400
        code, message = await client.error("teleport")
        assert code == 404 and "teleport" in message
        reply = await client.call("publish", {"channel": "ok", "data": "x" * 1500})
        assert reply["error"]["code"] == 413
        client.ws.send_nowait(orjson.dumps({"id": 50, "method": "ping", "extra": 1}).decode())
        assert (await client.reply(50))["error"]["code"] == 400
        client.ws.send_nowait(orjson.dumps({"id": 51, "method": "ping", "params": []}).decode())
        assert (await client.reply(51))["error"]["code"] == 400
        # The longest valid name is fine.
        await client.result("subscribe", {"channel": "a" * 255})
        await client.close()


@run_async()
async def test_malformed_messages_three_times_close_4502() -> None:
    async with running_hub() as hub:
        client = await HubClient.open(hub.port)
        client.ws.send_nowait("{not json")
        client.ws.send_nowait('{"id": "1", "method": "ping"}')
        await client.result("ping")  # a good command resets the count
        assert [m["error"]["code"] for m in client.unsolicited] == [400, 400]
        for _ in range(3):
            client.ws.send_nowait("[]")
        push = await client.push()
        assert push["push"] == "disconnect" and push["code"] == 4502
        assert (await client.closed())[0] == 4502


@run_async()
async def test_wrong_frame_type_closes_4502() -> None:
    async with running_hub() as hub:
        json_client = await HubClient.open(hub.port)
        json_client.ws.send_nowait(b"\x81\xa2id\x01")
        assert (await json_client.closed())[0] == 4502
        msgpack_client = await HubClient.open(hub.port, binary=True)
        msgpack_client.ws.send_nowait('{"id": 1, "method": "ping"}')
        assert (await msgpack_client.closed())[0] == 4502


@run_async()
async def test_connect_timeout() -> None:
    async with running_hub(connect_timeout=0.2) as hub:
        client = await HubClient.open(hub.port, connect=False)
        push = await client.push()
        assert push["push"] == "disconnect" and push["code"] == 4001 and push["reconnect"]
        assert (await client.closed())[0] == 4001


@run_async()
async def test_slow_consumer_is_dropped_with_4008() -> None:
    async with running_hub(api_key="key", max_message_size=16384, max_send_buffer=65536) as hub:
        port = hub.port
        # A subscriber that stops reading once subscribed.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /connection HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await reader.readuntil(b"\r\n\r\n")
        frames: list[tuple[int, bytes]] = []
        parser = FrameParser(lambda op, fin, rsv1, p: frames.append((op, bytes(p))), client=True)
        for command in (
            {"id": 1, "method": "connect"},
            {"id": 2, "method": "subscribe", "params": {"channel": "plain:x"}},
        ):
            writer.write(build_frame(OP_TEXT, orjson.dumps(command), mask=True))
        while len(frames) < 2:
            parser.feed(await reader.read(65536))
        assert len(hub.node.sessions) == 1
        data = "y" * 15000
        published = 0
        while hub.node.sessions and published < 2000:
            status, _ = await api(
                port, "POST", "/api/publish", {"channel": "plain:x", "data": data}
            )
            assert status == 200
            published += 1
        assert not hub.node.sessions, "the slow consumer is still connected"
        assert "plain:x" not in hub.node.channels
        # Reading now, it finds its pushes and then the close frame with 4008.
        async with asyncio.timeout(10):
            while not any(op == 8 for op, _ in frames):
                chunk = await reader.read(1 << 20)
                assert chunk, "closed without a close frame"
                parser.feed(chunk)
        writer.close()
        close = [payload for op, payload in frames if op == 8]
        assert int.from_bytes(close[0][:2], "big") == 4008
        assert frames[-2][0] == 1  # pushes came before it, whole


@run_async()
async def test_channel_options_come_from_the_channels_namespace() -> None:
    namespaces = [Namespace("quiet", history_size=0), Namespace("loud", history_size=5, history_ttl=60)]
    async with running_hub(namespaces=namespaces, history_size=3, history_ttl=60) as hub:
        client = await HubClient.open(hub.port)
        for channel in ("quiet:a", "loud:a", "plain"):
            await client.result("publish", {"channel": channel, "data": 1})
        code, _ = await client.error("history", {"channel": "quiet:a"})
        loud = await client.result("history", {"channel": "loud:a"})
        default = await client.result("history", {"channel": "plain"})
        assert code == codes.NOT_AVAILABLE
        assert [p["offset"] for p in loud["publications"]] == [1]
        assert [p["offset"] for p in default["publications"]] == [1]  # the top-level options
        code, message = await client.error("publish", {"channel": "nowhere:a", "data": 1})
        assert code == codes.NOT_FOUND and "unknown channel 'nowhere:a'" in message
        await client.close()


@run_async()
async def test_shutdown_tells_clients_to_come_back() -> None:
    async with running_hub() as hub:
        client = await HubClient.open(hub.port)
        waiting = await HubClient.open(hub.port, connect=False, binary=True)
        await hub.close()
        for each in (client, waiting):
            push = await each.push()
            assert push == {
                "push": "disconnect",
                "code": 1001,
                "reason": "server shutting down",
                "reconnect": True,
            }
            assert (await each.closed())[0] == 1001


class _Broker:
    inline = True


class _NodeStub:
    """Just what ``Node.run`` needs."""

    def __init__(self) -> None:
        self.broker = _Broker()
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task] = set()

    run = Node.run


@run_async()
async def test_run_completes_at_once_or_continues_in_a_task() -> None:
    node = _NodeStub()
    steps: list[str] = []

    async def immediate() -> None:
        steps.append("immediate")

    node.run(immediate())
    assert steps == ["immediate"] and not node._tasks

    future = asyncio.get_running_loop().create_future()

    async def suspending() -> None:
        steps.append("before")
        value = await future
        steps.append(f"after {value}")
        await asyncio.sleep(0)
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise

    node.run(suspending())
    assert steps[-1] == "before" and len(node._tasks) == 1
    future.set_result(7)
    for _ in range(5):
        await asyncio.sleep(0)
    assert steps[-1] == "after 7"
    (task,) = node._tasks
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert steps[-1] == "cancelled" and not node._tasks

    failing = asyncio.get_running_loop().create_future()

    async def raising() -> None:
        await failing

    node.run(raising())
    (task,) = node._tasks
    failing.set_exception(ValueError("boom"))
    with contextlib.suppress(ValueError):
        await task
    assert isinstance(task.exception(), ValueError)
