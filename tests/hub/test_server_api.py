"""The server API's operations on one hub, over real sockets: server-side subscriptions,
disconnects and refreshes of a user or one connection, presence counts, history reads and
removal, active channels, cluster info, batches, versions, the OpenAPI document, and the
same operations as Python calls."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

import fastws
from fastws.hub.commands import API_COMMANDS
from fastws.hub.protocol import codes
from tests.support.hub import SECRET, HubClient, api, http, running_hub, token
from tests.support.loops import run_async


def options() -> dict:
    return {"api_key": "key", "jwt_secret": SECRET}


async def connect(port: int, user: str, **claims) -> HubClient:
    """A client of ``user`` who may subscribe and publish anywhere (a token's claims)."""
    claims = {"channels": ["*"], "publish": ["*"], **claims}
    return await HubClient.open(port, token=token(user, **claims))


@run_async()
async def test_subscribe_and_unsubscribe_a_user_from_the_server() -> None:
    async with running_hub(**options()) as hub:
        alice1, alice2, bob = [await connect(hub.port, u) for u in ("alice", "alice", "bob")]
        await alice1.result("publish", {"channel": "plain:s", "data": "before"})
        status, body = await api(hub.port, "POST", "/api/v1/subscribe", {"user": "alice", "channel": "plain:s"})
        assert (status, body) == (200, {"result": {}})
        for client in (alice1, alice2):
            push = (await client.pushes_of("subscribe", 1))[0]
            assert push["channel"] == "plain:s" and push["offset"] == 1 and not push["recovered"]
        await api(hub.port, "POST", "/api/v1/publish", {"channel": "plain:s", "data": "hi"})
        for client in (alice1, alice2):
            pub = (await client.pushes_of("pub", 1))[0]
            assert (pub["channel"], pub["data"], pub["offset"]) == ("plain:s", "hi", 2)
        # Subscribed by the server, the client can leave on its own or be told to.
        body = {"user": "alice", "channel": "plain:s", "client": alice2.client_id}
        assert (await api(hub.port, "POST", "/api/v1/unsubscribe", body))[0] == 200
        assert (await alice2.pushes_of("unsubscribe", 1))[0] == {
            "push": "unsubscribe",
            "channel": "plain:s",
            "code": 2000,
            "reason": "unsubscribed by the server API",
        }
        await api(hub.port, "POST", "/api/v1/publish", {"channel": "plain:s", "data": "later"})
        assert (await alice1.pushes_of("pub", 1))[0]["data"] == "later"
        await alice2.no_more_pushes()
        await bob.no_more_pushes()
        # A second subscription of the same channel changes nothing.
        await api(hub.port, "POST", "/api/v1/subscribe", {"user": "alice", "channel": "plain:s"})
        assert (await alice2.pushes_of("subscribe", 1))[0]["offset"] == 3
        await alice1.no_more_pushes()
        # One connection of the user alone.
        body = {"user": "alice", "channel": "plain:t", "client": alice1.client_id}
        assert (await api(hub.port, "POST", "/api/v1/subscribe", body))[0] == 200
        assert (await alice1.pushes_of("subscribe", 1))[0]["channel"] == "plain:t"
        await alice2.no_more_pushes()
        for client in (alice1, alice2, bob):
            await client.close()


@run_async()
async def test_disconnect_one_connection_or_a_user_with_a_code_and_reconnect_advice() -> None:
    async with running_hub(**options()) as hub:
        alice1, alice2, bob1, bob2 = [
            await connect(hub.port, u) for u in ("alice", "alice", "bob", "bob")
        ]
        body = {"client": alice1.client_id, "code": 4100, "reason": "moved", "reconnect": True}
        assert (await api(hub.port, "POST", "/api/v1/disconnect", body))[0] == 200
        push = (await alice1.pushes_of("disconnect", 1))[0]
        assert push == {"push": "disconnect", "code": 4100, "reason": "moved", "reconnect": True}
        assert await alice1.closed() == (4100, "moved")
        await alice2.no_more_pushes()
        # The client and the user must agree when both are named.
        body = {"user": "bob", "client": alice2.client_id}
        assert (await api(hub.port, "POST", "/api/v1/disconnect", body))[0] == 200
        await alice2.no_more_pushes()
        assert (await api(hub.port, "POST", "/api/v1/disconnect", {"user": "bob"}))[0] == 200
        for client in (bob1, bob2):
            assert await client.closed() == (4503, codes.DISCONNECTED_BY_API.reason)
        status, body = await api(hub.port, "POST", "/api/v1/disconnect", {"code": 4100})
        assert status == 400 and "'user' or the 'client'" in body["error"]["message"]
        await alice2.close()


@run_async()
async def test_refresh_extends_or_ends_connections() -> None:
    async with running_hub(**options(), jwt_leeway=0) as hub:
        soon = int(time.time()) + 2
        short, other, ended = [
            await connect(hub.port, u, exp=soon) for u in ("alice", "carol", "bob")
        ]
        later = int(time.time()) + 3600
        body = {"user": "alice", "expire_at": later}
        assert (await api(hub.port, "POST", "/api/v1/refresh", body))[0] == 200
        body = {"user": "bob", "client": ended.client_id, "expired": True}
        assert (await api(hub.port, "POST", "/api/v1/refresh", body))[0] == 200
        assert (await ended.closed())[0] == codes.TOKEN_EXPIRED.code
        assert (await other.closed())[0] == codes.TOKEN_EXPIRED.code  # not refreshed
        await short.no_more_pushes()  # past its token's expiry, still connected
        for wrong in ({"user": "alice"}, {"user": "alice", "expire_at": later, "expired": True}):
            assert (await api(hub.port, "POST", "/api/v1/refresh", wrong))[0] == 400
        await short.close()


@run_async()
async def test_presence_stats_history_and_its_removal() -> None:
    async with running_hub(**options()) as hub:
        clients = [await connect(hub.port, u) for u in ("alice", "alice", "bob")]
        for client in clients:
            await client.result("subscribe", {"channel": "room:p"})
        status, body = await api(hub.port, "GET", "/api/v1/presence_stats?channel=room:p")
        assert (status, body) == (200, {"result": {"clients": 3, "users": 2}})
        status, body = await api(hub.port, "GET", "/api/v1/presence_stats?channel=plain:p")
        assert status == 422
        for i in range(5):
            await api(hub.port, "POST", "/api/v1/publish", {"channel": "room:p", "data": i})
        _, body = await api(hub.port, "GET", "/api/v1/history?channel=room:p&limit=0")
        epoch = body["result"]["epoch"]
        target = f"/api/v1/history?channel=room:p&since={epoch}:2&limit=2"
        status, body = await api(hub.port, "GET", target)
        assert status == 200 and [p["data"] for p in body["result"]["publications"]] == [2, 3]
        status, body = await api(hub.port, "GET", target.replace(epoch, "other"))
        assert status == 410
        assert (await api(hub.port, "POST", "/api/v1/history_remove", {"channel": "room:p"}))[0] == 200
        _, body = await api(hub.port, "GET", "/api/v1/history?channel=room:p")
        assert body["result"] == {"epoch": epoch, "offset": 5, "publications": []}
        for client in clients:
            await client.close()


@run_async()
async def test_channels_info_and_batch() -> None:
    async with running_hub(**options()) as hub:
        clients = [await connect(hub.port, u) for u in ("alice", "bob")]
        for client in clients:
            await client.result("subscribe", {"channel": "room:a"})
        await clients[0].result("subscribe", {"channel": "plain:b"})
        status, body = await api(hub.port, "GET", "/api/v1/channels")
        assert body["result"] == {
            "channels": {"plain:b": {"subscribers": 1}, "room:a": {"subscribers": 2}}
        }
        _, body = await api(hub.port, "GET", "/api/v1/channels?pattern=room:*")
        assert body["result"] == {"channels": {"room:a": {"subscribers": 2}}}
        _, body = await api(hub.port, "GET", "/api/v1/info")
        [node] = body["result"]["nodes"]
        assert node["node"] == hub.node.id and node["version"] == fastws.__version__
        assert (node["connections"], node["users"], node["subscriptions"], node["channels"]) == (
            2, 2, 3, 2
        )  # fmt: skip
        assert node["uptime"] >= 0
        commands = [
            {"method": "publish", "params": {"channel": "room:a", "data": 1}},
            {"method": "presence_stats", "params": {"channel": "room:a"}},
            {"method": "publish", "params": {"channel": "bad channel", "data": 1}},
            {"method": "batch", "params": {"commands": []}},
            {"method": "disconnect", "params": {"client": clients[1].client_id}},
        ]
        status, body = await api(hub.port, "POST", "/api/v1/batch", {"commands": commands})
        replies = body["result"]["replies"]
        assert status == 200 and len(replies) == 5
        assert replies[0]["result"]["offset"] == 1
        assert replies[1] == {"result": {"clients": 2, "users": 2}}
        assert replies[2]["error"]["code"] == replies[3]["error"]["code"] == 400
        assert replies[4] == {"result": {}}
        assert (await clients[1].closed())[0] == 4503
        await clients[0].close()


@run_async()
async def test_versions_and_the_openapi_document() -> None:
    async with running_hub(**options()) as hub:
        for path in ("/api/v1/info", "/api/info"):
            status, _, _ = await http(hub.port, "GET", path, headers=(("API-Version", "1"),), api_key="key")
            assert status == 200
        status, _, payload = await http(
            hub.port, "GET", "/api/info", headers=(("API-Version", "2"),), api_key="key"
        )
        error = orjson.loads(payload)["error"]
        assert status == 400 and "supported: 1" in error["message"]
        status, headers, payload = await http(hub.port, "GET", "/api/v1/openapi.json")
        assert status == 200 and headers["content-type"].startswith("application/json")
        document = orjson.loads(payload)
        assert set(document["paths"]) == {f"/api/v1/{name}" for name in API_COMMANDS}
        publish = document["paths"]["/api/v1/publish"]["post"]["requestBody"]
        schema = publish["content"]["application/json"]["schema"]
        assert schema["required"] == ["channel"] and "b64data" in schema["properties"]
        query = document["paths"]["/api/v1/history"]["get"]["parameters"]
        assert [p["name"] for p in query] == ["API-Version", "channel", "since", "limit", "reverse"]
    async with running_hub() as hub:  # no API key: no API, no document
        assert (await http(hub.port, "GET", "/api/v1/openapi.json"))[0] == 404


@run_async()
async def test_the_same_operations_as_python_calls() -> None:
    async with running_hub(**options()) as hub:
        server = hub.server_api
        alice = await connect(hub.port, "alice")
        assert await server.subscribe(user="alice", channel="room:py") == {}
        assert (await alice.pushes_of("subscribe", 1))[0]["channel"] == "room:py"
        result = await server.publish(channel="room:py", data=b"\x00\x01")
        assert result["offset"] == 1
        assert await server.presence_stats(channel="room:py") == {"clients": 1, "users": 1}
        await server.publish(channel="room:py", data={"text": "hi"})
        history = await server.history(channel="room:py")  # plain values, as HTTP gives them
        assert [p.get("data", p.get("b64data")) for p in history["publications"]] == [
            "AAE=", {"text": "hi"}
        ]  # fmt: skip
        presence = await server.presence(channel="room:py")
        assert presence["clients"][alice.client_id]["user"] == "alice"
        assert (await server.call("channels"))["channels"] == {"room:py": {"subscribers": 1}}
        with pytest.raises(codes.HubError) as caught:
            await server.publish(channel="bad channel", data=1)
        assert caught.value.code == codes.BAD_REQUEST
        with pytest.raises(AttributeError):
            server.no_such_command  # noqa: B018
        await server.disconnect(user="alice", reason="bye")
        assert await alice.closed() == (4503, "bye")
        await asyncio.sleep(0)
