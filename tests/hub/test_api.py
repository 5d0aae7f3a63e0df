"""The HTTP API and the plain HTTP routes that share the hub's port."""

from __future__ import annotations

import orjson
import pytest

import fastws
from fastws.hub import app as hub_app
from tests.support.hub import HubClient, api, http, running_hub
from tests.support.loops import run_async


@run_async()
async def test_api_needs_the_key_and_is_off_without_one() -> None:
    async with running_hub(api_key="key") as hub:
        for key in (None, "wrong", ""):
            status, body = await api(hub.port, "GET", "/api/v1/info", api_key=key)
            assert status == 401 and body["error"]["code"] == 401
        status, _, _ = await http(
            hub.port, "GET", "/api/v1/info", headers=(("Authorization", "Bearer key"),)
        )
        assert status == 401
        assert (await api(hub.port, "GET", "/api/v1/info"))[0] == 200
    async with running_hub() as hub:
        status, body = await api(hub.port, "GET", "/api/v1/info")
        assert status == 404 and "api_key" in body["error"]["message"]


@run_async()
async def test_publish_and_broadcast_reach_subscribers() -> None:
    async with running_hub(api_key="key") as hub:
        client = await HubClient.open(hub.port)
        await client.result("subscribe", {"channel": "plain:a"})
        await client.result("subscribe", {"channel": "plain:b"})
        status, body = await api(
            hub.port, "POST", "/api/v1/publish", {"channel": "plain:a", "data": [1]}
        )
        assert status == 200
        assert body["result"]["offset"] == 1 and isinstance(body["result"]["epoch"], str)
        assert await client.push() == {
            "push": "pub",
            "channel": "plain:a",
            "offset": 1,
            "data": [1],
        }
        status, body = await api(
            hub.port, "POST", "/api/broadcast", {"channels": ["plain:a", "plain:b"], "data": "x"}
        )
        assert status == 200
        assert [r["result"]["offset"] for r in body["result"]["responses"]] == [2, 1]
        pushes = [await client.push() for _ in range(2)]
        assert {(p["channel"], p["offset"], p["data"]) for p in pushes} == {
            ("plain:a", 2, "x"),
            ("plain:b", 1, "x"),
        }
        await client.no_more_pushes()
        await client.close()


@run_async()
async def test_send_and_disconnect_a_user() -> None:
    async with running_hub(api_key="key") as hub:
        client = await HubClient.open(hub.port)  # insecure mode: user ""
        status, body = await api(hub.port, "POST", "/api/send", {"user": "", "data": 1})
        assert status == 400
        token = orjson.loads((await http(hub.port, "GET", "/api/dev/token?user=ann"))[2])["token"]
        ann = await HubClient.open(hub.port, token=token)
        status, body = await api(
            hub.port, "POST", "/api/v1/send", {"user": "ann", "data": {"a": 1}}
        )
        assert (status, body) == (200, {"result": {}})
        assert await ann.push() == {"push": "message", "data": {"a": 1}}
        status, _ = await api(hub.port, "POST", "/api/v1/disconnect", {"user": "ann"})
        assert status == 200
        push = await ann.push()
        assert push == {
            "push": "disconnect",
            "code": 4503,
            "reason": "disconnected by the server API",
            "reconnect": False,
        }
        assert (await ann.closed())[0] == 4503
        await client.no_more_pushes()
        await client.close()


@run_async()
async def test_presence_history_and_info() -> None:
    async with running_hub(api_key="key") as hub:
        client = await HubClient.open(hub.port)
        await client.result("subscribe", {"channel": "room:1"})
        for i in range(3):
            await client.result("publish", {"channel": "room:1", "data": i})
        status, body = await api(hub.port, "GET", "/api/v1/presence?channel=room:1")
        assert status == 200 and body["result"] == {"clients": {client.client_id: {"user": ""}}}
        status, body = await api(hub.port, "GET", "/api/v1/history?channel=room:1&limit=2")
        assert status == 200
        assert [p["data"] for p in body["result"]["publications"]] == [0, 1]
        assert body["result"]["offset"] == 3
        status, body = await api(hub.port, "GET", "/api/info")
        info = body["result"]
        assert info["version"] == fastws.__version__ and info["node"] == hub.node.id
        assert info["connections"] == 1 and info["channels"] == 1
        await client.close()


@pytest.mark.parametrize(
    ("method", "target", "body", "status"),
    [
        ("POST", "/api/v1/publish", b"{nope", 400),
        ("POST", "/api/v1/publish", b"[1]", 400),
        ("POST", "/api/v1/publish", b'{"channel": "a", "data": 1, "x": 2}', 400),
        ("POST", "/api/v1/publish", b'{"channel": "a b", "data": 1}', 400),
        ("POST", "/api/v1/publish", b'{"data": 1}', 400),
        ("POST", "/api/v1/broadcast", b'{"channels": "a", "data": 1}', 400),
        ("POST", "/api/v1/disconnect", b'{"user": 5}', 400),
        ("POST", "/api/v1/publish", b'{"channel": "a", "data": "' + b"x" * 70000 + b'"}', 413),
        ("GET", "/api/v1/publish", None, 405),
        ("POST", "/api/v1/info", b"{}", 405),
        ("GET", "/api/v1/teleport", None, 404),
        ("GET", "/api/v2/info", None, 404),
        ("GET", "/api/v1/presence", None, 400),
        ("GET", "/api/v1/presence?channel=plain:x", None, 422),
        ("GET", "/api/v1/history?channel=plain:x", None, 422),
        ("GET", "/api/v1/history?channel=room:x&limit=-1", None, 400),
        ("GET", "/api/v1/history?channel=room:x&channel=room:y", None, 400),
        ("GET", "/api/v1/info?x=1", None, 400),
    ],
)
@run_async(loops=("uvloop",))
async def test_api_errors(method: str, target: str, body: bytes | None, status: int) -> None:
    async with running_hub(api_key="key") as hub:
        got, headers, payload = await http(hub.port, method, target, body, api_key="key")
        assert got == status, payload
        assert headers["content-type"] == "application/json"
        error = orjson.loads(payload)["error"]
        assert error["code"] == status and error["message"]
        if status == 405:
            assert headers["allow"] in ("GET", "POST")


@run_async()
async def test_health_ready_and_unknown_paths() -> None:
    async with running_hub() as hub:
        assert (await http(hub.port, "GET", "/health"))[::2] == (200, b"ok")
        assert (await http(hub.port, "GET", "/ready"))[::2] == (200, b"ready")
        status, _, body = await http(hub.port, "GET", "/nowhere")
        assert status == 404 and orjson.loads(body)["error"]["code"] == 404
        await hub.node.broker.close()
        assert (await http(hub.port, "GET", "/ready"))[0] == 503
        assert (await http(hub.port, "GET", "/health"))[0] == 200
        client = await HubClient.open(hub.port)
        code, _ = await client.error("subscribe", {"channel": "room:1"})
        assert code == 503
        assert (await client.error("publish", {"channel": "room:1", "data": 1}))[0] == 503
        await client.close()


@run_async()
async def test_websocket_upgrades_only_at_connection() -> None:
    async with running_hub() as hub:
        with pytest.raises(fastws.HandshakeError) as caught:
            await fastws.connect(f"ws://127.0.0.1:{hub.port}/elsewhere")
        assert caught.value.status == 404


@run_async()
async def test_demo_page_or_placeholder(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(hub_app, "STATIC_DIR", tmp_path)
    async with running_hub() as hub:
        status, headers, body = await http(hub.port, "GET", "/")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"demo page is missing" in body
        (tmp_path / "index.html").write_text("<title>demo</title>")
        (tmp_path / "app.js").write_text("let x = 1;")
        status, _, body = await http(hub.port, "GET", "/")
        assert (status, body) == (200, b"<title>demo</title>")
        status, headers, body = await http(hub.port, "GET", "/static/app.js")
        assert status == 200 and "javascript" in headers["content-type"]
        assert (await http(hub.port, "GET", "/static/../app.py"))[0] == 404
        assert (await http(hub.port, "GET", "/static/%2e%2e/app.py"))[0] == 404
        assert (await http(hub.port, "GET", "/static/missing.css"))[0] == 404


@run_async()
async def test_allowed_origins() -> None:
    async with running_hub(allowed_origins=["https://app.example"]) as hub:
        url = f"ws://127.0.0.1:{hub.port}/connection"
        with pytest.raises(fastws.HandshakeError) as caught:
            await fastws.connect(url, origin="https://evil.example")
        assert caught.value.status == 403
        async with fastws.connect(url, origin="https://app.example"):
            pass
        async with fastws.connect(url):  # no Origin: not a browser
            pass
