"""Hooks end to end over real sockets: the same application in-process and behind the
HTTP proxy, and a backend that refuses, is slow, crashes, or is down."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from aiohttp import web

from fastws.hub import session as session_module
from fastws.hub.app import Hub
from fastws.hub.client import Client, HubError
from fastws.hub.config import NOTIFY_EVENTS, ConfigError
from fastws.hub.hooks.contract import NOTIFICATIONS
from fastws.hub.namespaces import Namespace
from fastws.hub.protocol import codes
from fastws.hub.testing import start_hub
from tests.support import hooks_app
from tests.support.hooks_app import proxy_backend
from tests.support.hub import PLAIN, ROOMS, HubClient, make_config, running_hub, token
from tests.support.loops import run_async
from tests.support.polling import until

TIMEOUT = 0.5  # seconds each hook may take in these tests
EVENTS = ("connect", "subscribe", "publish", "rpc", "refresh")
TIMEOUTS = {f"{event}_hook_timeout": TIMEOUT for event in (*EVENTS, "notify")}


def proxy_options(base: str) -> dict[str, Any]:
    options = {f"proxy_{event}_endpoint": f"{base}/{event}" for event in EVENTS}
    options["proxy_notify_endpoint"] = f"{base}/notify"
    return options


@contextlib.asynccontextmanager
async def hooked_hub(backend: str, **options: Any) -> AsyncIterator[Any]:
    """A hub without any token key whose hooks are the test application's."""
    namespaces = [HOOKED_ROOMS, PLAIN, PERSONAL]
    options = {"insecure": False, "namespaces": namespaces, **TIMEOUTS, **options}
    hooks_app.notifications.clear()
    hooks_app.refreshes.clear()
    if backend == "module":
        async with running_hub(hooks="tests.support.hooks_app", **options) as hub:
            yield hub
    else:
        async with proxy_backend() as base, running_hub(**proxy_options(base), **options) as hub:
            yield hub


async def connect_as(hub: Any, name: str | None, **kw: Any) -> HubClient:
    headers = (("Cookie", f"theme=dark; session={name}"),) if name is not None else ()
    return await HubClient.open(hub.port, headers=headers, connect=False, **kw)


@contextlib.asynccontextmanager
async def silent_backend() -> AsyncIterator[str]:
    """A backend that takes every request and never answers; yields its base URL."""

    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(hooks_app.SLOW)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/{event}", never)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


# The subscribe and publish hooks apply in the room namespace only.
HOOKED_ROOMS = replace(ROOMS, subscribe_hook=True, publish_hook=True)
PERSONAL = Namespace("personal", history_size=10, history_ttl=60)

BACKENDS = pytest.mark.parametrize("backend", ["module", "proxy"])


@BACKENDS
@run_async(loops=("uvloop",))
async def test_the_connect_hook_authenticates_from_the_cookie_without_a_token(backend) -> None:
    async with hooked_hub(backend) as hub:
        client = await connect_as(hub, "bob")
        result = await client.result("connect", {})
        assert result["user"] == "bob" and result["data"] == {"welcome": "bob"}
        whoami = await client.result("rpc", {"method": "whoami"})
        assert whoami == {
            "data": {"user": "bob", "client": result["client"], "meta": {"role": "member", "keep": True}}
        }
        assert await client.result("rpc", {"method": "echo", "data": [1, "two"]}) == {
            "data": [1, "two"]
        }
        await client.close()
        for _ in range(100):
            if hooks_app.notifications:
                break
            await asyncio.sleep(0.02)
        assert hooks_app.notifications == [("disconnect", "bob", 1000)]


@BACKENDS
@run_async(loops=("uvloop",))
async def test_refusals_are_the_backends_errors(backend) -> None:
    async with hooked_hub(backend) as hub:
        anonymous = await connect_as(hub, None)
        assert await anonymous.error("connect", {}) == (401, "log in first")
        assert await anonymous.closed() == (codes.REFUSED.code, codes.REFUSED.reason)

        banned = await connect_as(hub, "banned")
        assert await banned.error("connect", {}) == (403, "banned")
        assert await banned.closed() == (4600, "banned for a week")

        client = await connect_as(hub, "bob")
        await client.result("connect", {})
        assert await client.error("subscribe", {"channel": "room:secret"}) == (
            403,
            "bob may not read room:secret",
        )
        assert await client.error("publish", {"channel": "room:1", "data": {"text": ""}}) == (
            400,
            "a message needs text",
        )
        assert await client.error("rpc", {"method": "nope"}) == (404, "no method 'nope'")
        await client.result("ping")  # still connected
        await client.close()


@BACKENDS
@run_async(loops=("uvloop",))
async def test_subscribe_and_publish_hooks_decide_and_rewrite(backend) -> None:
    async with hooked_hub(backend) as hub:
        client = await connect_as(hub, "bob")
        await client.result("connect", {})
        reply = await client.result("subscribe", {"channel": "room:1", "data": {"hi": 1}})
        assert reply["data"] == {"channel": "room:1", "asked": {"hi": 1}}
        await client.result("publish", {"channel": "room:1", "data": {"text": "  hello "}})
        [push] = await client.pushes_of("pub", 1)
        assert push["data"] == {"text": "hello", "by": "bob"}
        await client.result("publish", {"channel": "room:1", "data": {"text": "as is", "keep": 1}})
        [push] = await client.pushes_of("pub", 1)
        assert push["data"] == {"text": "as is", "keep": 1}
        # plain: no hook applies, and the namespace grants nothing
        for method, params in (
            ("subscribe", {"channel": "plain:secret"}),
            ("publish", {"channel": "plain:1", "data": {"text": ""}}),
        ):
            code, message = await client.error(method, params)
            assert code == 403 and message.startswith("not allowed"), message
        await client.close()


@BACKENDS
@run_async(loops=("uvloop",))
async def test_a_slow_or_crashing_backend_is_a_clear_error_not_a_hang(backend) -> None:
    async with hooked_hub(backend) as hub:
        slow = await connect_as(hub, "slow")
        code, message = await slow.error("connect", {})
        assert code == codes.BACKEND_ERROR and "try again later" in message
        crash = await connect_as(hub, "crash")
        assert (await crash.error("connect", {}))[0] == codes.BACKEND_ERROR
        client = await connect_as(hub, "bob")
        await client.result("connect", {})
        for method, params in (
            ("subscribe", {"channel": "room:slow"}),
            ("publish", {"channel": "room:crash", "data": {"text": "x"}}),
            ("rpc", {"method": "slow"}),
            ("rpc", {"method": "crash"}),
        ):
            assert (await client.error(method, params))[0] == codes.BACKEND_ERROR, method
        await client.result("ping")
        for ws in (slow, crash, client):
            await ws.close()


@run_async(loops=("uvloop",))
async def test_a_backend_that_is_down_fails_fast_once_its_circuit_opens() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{probe.getsockname()[1]}"
    async with running_hub(jwt_secret="x" * 32, **proxy_options(base), **TIMEOUTS) as hub:
        client = await HubClient.open(hub.port, token=token("bob", secret="x" * 32))
        for _ in range(5):
            code, message = await client.error("rpc", {"method": "echo"})
            assert code == codes.BACKEND_ERROR
        breaker = hub.node.hooks.proxy.breakers()["rpc"]
        assert breaker.state == "open" and breaker.trips == 1
        await client.close()


@BACKENDS
@run_async(loops=("uvloop",), timeout=20)
async def test_the_refresh_hook_extends_or_ends_an_expiring_connection(backend) -> None:
    async with hooked_hub(backend) as hub:
        kept = await connect_as(hub, "short")
        await kept.result("connect", {})
        gone = await connect_as(hub, "gone")
        await gone.result("connect", {})
        assert await gone.closed() == (codes.TOKEN_EXPIRED.code, codes.TOKEN_EXPIRED.reason)
        for _ in range(200):
            if "short" in hooks_app.refreshes:
                break
            await asyncio.sleep(0.02)
        assert set(hooks_app.refreshes) == {"short", "gone"}
        await asyncio.sleep(1.5)  # past the first expiry: still connected
        await kept.result("ping")
        session = next(iter(hub.node.sessions.values()))
        assert session.credentials.info == b'{"name":"Refreshed"}'
        await kept.close()


@run_async(loops=("uvloop",))
async def test_tokens_and_hooks_combine() -> None:
    """With a token key too, a token connects as before and no token asks the hook."""
    secret = "s" * 32
    async with hooked_hub("module", jwt_secret=secret) as hub:
        with_token = await HubClient.open(hub.port, token=token("carol", secret=secret))
        assert (await with_token.result("rpc", {"method": "whoami"}))["data"]["user"] == "carol"
        by_cookie = await connect_as(hub, "bob")
        assert (await by_cookie.result("connect", {}))["user"] == "bob"
        for ws in (with_token, by_cookie):
            await ws.close()


@run_async(loops=("uvloop",))
async def test_rpc_without_a_hook_is_not_implemented() -> None:
    async with running_hub() as hub:
        client = await HubClient.open(hub.port)
        assert await client.error("rpc", {"method": "x"}) == (
            codes.NOT_IMPLEMENTED,
            "no rpc hook is configured",
        )
        await client.close()


def test_a_hub_without_token_key_needs_a_connect_hook() -> None:
    with pytest.raises(ConfigError, match="no token key"):
        make_config(insecure=False, proxy_rpc_endpoint="http://127.0.0.1:1/rpc")
    config = make_config(insecure=False, hooks="tests.support.hooks_without_connect")
    with pytest.raises(ConfigError, match="define no on_connect"):
        Hub(config)
    with pytest.raises(ConfigError, match="proxy_rpc_endpoint"):
        make_config(proxy_rpc_endpoint="ftp://x/rpc")


@BACKENDS
@run_async(loops=("uvloop",))
async def test_server_side_subscriptions_of_the_connect_hook_recover_on_reconnect(backend) -> None:
    async with hooked_hub(backend) as hub:
        alice = await connect_as(hub, "alice")
        await alice.result("connect", {})
        [push] = await alice.pushes_of("subscribe", 1)
        assert push["channel"] == "personal:alice" and push["recovered"] is False
        await hub.node.publish("personal:alice", b'{"n":1}', None)
        [pub] = await alice.pushes_of("pub", 1)
        assert pub["channel"] == "personal:alice" and pub["data"] == {"n": 1}
        position = {"epoch": push["epoch"], "offset": pub["offset"]}
        await alice.close()

        for n in (2, 3):  # missed while away
            await hub.node.publish("personal:alice", orjson.dumps({"n": n}), None)
        again = await connect_as(hub, "alice")
        await again.result("connect", {"subs": {"personal:alice": position}})
        [push] = await again.pushes_of("subscribe", 1)
        assert push["recovered"] is True
        assert [p["data"] for p in push["publications"]] == [{"n": 2}, {"n": 3}]
        await again.close()


@run_async(loops=("uvloop",))
async def test_the_subs_claim_subscribes_on_the_server_side() -> None:
    secret = "s" * 32
    async with running_hub(jwt_secret=secret, namespaces=[PERSONAL]) as hub:
        carol = await HubClient.open(hub.port, token=token("carol", secret=secret, subs=["personal:carol"]))
        [push] = await carol.pushes_of("subscribe", 1)
        assert push["channel"] == "personal:carol"
        assert "personal:carol" in next(iter(hub.node.sessions.values())).subscriptions
        await carol.close()


@run_async(loops=("uvloop",))
async def test_the_python_client_gets_server_side_subscriptions_and_rpc() -> None:
    async with hooked_hub("module") as hub:
        url = f"ws://127.0.0.1:{hub.port}/connection"
        async with Client(url, headers=(("Cookie", "session=alice"),), backoff_base=0.05) as client:
            for _ in range(250):
                if "personal:alice" in client.server_subscriptions:
                    break
                await asyncio.sleep(0.02)
            sub = client.server_subscriptions["personal:alice"]
            assert (await client.rpc("whoami"))["user"] == "alice"
            with pytest.raises(HubError) as refused:
                await client.rpc("nope")
            assert refused.value.code == 404
            await hub.node.publish("personal:alice", b'{"n":1}', None)
            received = []
            async with asyncio.timeout(5):
                async for pub in sub:
                    received.append(pub.data)
                    if len(received) == 1:
                        client.drop()  # the server subscribes again and recovers from here
                        for n in (2, 3):
                            await hub.node.publish("personal:alice", orjson.dumps({"n": n}), None)
                    if len(received) == 3:
                        break
            assert received == [{"n": 1}, {"n": 2}, {"n": 3}]
            assert client.server_subscriptions["personal:alice"] is sub


async def until_notified(count: int) -> None:
    for _ in range(250):
        if len(hooks_app.notifications) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"notifications so far: {hooks_app.notifications}")


@BACKENDS
@run_async(loops=("uvloop",))
async def test_a_channel_is_occupied_by_its_first_subscriber_and_vacated_by_its_last(backend):
    async with hooked_hub(backend) as hub:
        clients = [await connect_as(hub, name) for name in ("bob", "carol")]
        for client in clients:
            await client.result("connect", {})
            await client.result("subscribe", {"channel": "room:x"})
        await until_notified(1)
        assert hooks_app.notifications == [("occupied", "room:x")]
        for client in clients:
            await client.result("unsubscribe", {"channel": "room:x"})
        await until_notified(2)
        assert hooks_app.notifications == [("occupied", "room:x"), ("vacated", "room:x")]
        for client in clients:
            await client.close()


@run_async(loops=("uvloop",))
async def test_the_notify_endpoint_gets_only_the_notifications_it_lists() -> None:
    async with hooked_hub("proxy", proxy_notify_events=["disconnect"]) as hub:
        assert hub.node.hooks.has("disconnect")
        assert not hub.node.hooks.has("channel_occupied")
        assert not hub.node.hooks.has("channel_vacated")
        bob, carol = [await connect_as(hub, name) for name in ("bob", "carol")]
        for client in (bob, carol):
            await client.result("connect", {})
            await client.result("subscribe", {"channel": "room:x"})
        await bob.result("unsubscribe", {"channel": "room:x"})
        await bob.close()
        await carol.close()  # still subscribed: room:x is vacated as it goes
        await until_notified(2)
        assert sorted(hooks_app.notifications) == [
            ("disconnect", "bob", 1000), ("disconnect", "carol", 1000)
        ]  # fmt: skip


def test_the_notification_names_match_the_configuration() -> None:
    assert tuple(NOTIFICATIONS) == NOTIFY_EVENTS


class Lifecycle:
    """Hooks that keep the server API from on_start and use it in an RPC."""

    def __init__(self) -> None:
        self.api: Any = None
        self.stopped = False

    async def on_start(self, api: Any) -> None:
        self.api = api

    async def on_rpc(self, ctx: Any, method: str, data: Any) -> dict:
        await self.api.subscribe(user=ctx.user, channel=data["channel"])
        return {"data": {"subscribed": data["channel"]}}

    async def on_stop(self) -> None:
        self.stopped = True


@run_async(loops=("uvloop",))
async def test_on_start_hands_the_hooks_the_server_api_and_on_stop_runs_at_shutdown() -> None:
    hooks = Lifecycle()
    async with start_hub(hooks, namespaces=[PLAIN]) as hub:
        assert hooks.api is hub.server_api
        ann = await hub.client("ann")
        assert await ann.rpc("join", {"channel": "plain:news"}) == {"subscribed": "plain:news"}
        await hub.server_api.publish(channel="plain:news", data={"n": 1})
        async with asyncio.timeout(5):
            while "plain:news" not in ann.server_subscriptions:
                await asyncio.sleep(0.01)
            publication = await anext(aiter(ann.server_subscriptions["plain:news"]))
        assert publication.data == {"n": 1}
        assert not hooks.stopped
    assert hooks.stopped


class FailingStart:
    async def on_start(self, api: Any) -> None:
        raise RuntimeError("the database is not there")


@run_async(loops=("uvloop",))
async def test_a_failing_on_start_stops_the_hub_from_starting() -> None:
    with pytest.raises(RuntimeError, match="database"):
        async with start_hub(FailingStart(), namespaces=[PLAIN]):
            pass


@BACKENDS
@run_async(loops=("uvloop",))
async def test_the_info_the_subscribe_hook_gives_is_what_presence_and_join_show(backend) -> None:
    async with hooked_hub(backend) as hub:
        carol, bob = [await connect_as(hub, name) for name in ("carol", "bob")]
        ids = [(await client.result("connect", {}))["client"] for client in (carol, bob)]
        await carol.result("subscribe", {"channel": "room:1"})  # the connection's own info
        await carol.result("subscribe", {"channel": "room:vip"})
        await bob.result("subscribe", {"channel": "room:vip"})
        joins = [push["info"] for push in await carol.pushes_of("join", 3)]
        assert joins == [
            {"client": ids[0], "user": "carol", "info": {"name": "Carol"}},
            {"client": ids[0], "user": "carol", "info": {"name": "Carol", "badge": "vip"}},
            {"client": ids[1], "user": "bob", "info": {"name": "Bob", "badge": "vip"}},
        ]
        presence = await hub.server_api.presence(channel="room:vip")
        assert presence["clients"][ids[1]]["info"] == {"name": "Bob", "badge": "vip"}
        presence = await hub.server_api.presence(channel="room:1")
        assert presence["clients"][ids[0]]["info"] == {"name": "Carol"}
        for client in (carol, bob):
            await client.close()


@BACKENDS
@run_async(loops=("uvloop",), timeout=20)
async def test_a_failing_refresh_hook_keeps_the_connection_and_is_asked_again(
    backend, monkeypatch
) -> None:
    """Raised in-process, HTTP 500 and no answer in time over HTTP: the connection stays
    past its expiry, and the next answer of the hook is taken."""
    monkeypatch.setattr(session_module, "REFRESH_RETRY", 0.2)
    names = ("crash-on-refresh", "slow-on-refresh")
    async with hooked_hub(backend) as hub:
        clients = [await connect_as(hub, name) for name in names]
        for client in clients:
            await client.result("connect", {})

        def asked_twice() -> bool:
            return all(hooks_app.refreshes.count(name) == 2 for name in names)

        await until(asked_twice, "each refresh hook asked again after it failed", timeout=10)
        for client in clients:
            await client.result("ping")
        for session in list(hub.node.sessions.values()):
            assert session.credentials.info == b'{"name":"Refreshed"}'
            assert session.credentials.expires_at > time.time() + 600
        for client in clients:
            await client.close()


@BACKENDS
@run_async(loops=("uvloop",))
async def test_hooks_see_the_remote_address_and_the_chosen_headers(backend) -> None:
    chosen = ["Cookie", "X-Tenant", "User-Agent", "Host"]
    seen: list[dict] = []
    static = {"X-Hub-Key": "k-3f9a", "User-Agent": "fastws-hub-eu"}
    async with contextlib.AsyncExitStack() as stack:
        if backend == "module":
            options: dict[str, Any] = {"hooks": "tests.support.hooks_app"}
        else:
            base = await stack.enter_async_context(proxy_backend(seen))
            options = {**proxy_options(base), "proxy_static_headers": static}
        hub = await stack.enter_async_context(
            running_hub(
                insecure=False, hook_headers=chosen, namespaces=[HOOKED_ROOMS], **TIMEOUTS, **options
            )
        )
        headers = (
            ("Cookie", "session=bob"),
            ("X-Tenant", "acme"),
            ("User-Agent", "browser/1"),
            ("X-Not-Chosen", "1"),
        )
        client = await HubClient.open(hub.port, headers=headers, connect=False)
        await client.result("connect", {})
        context = (await client.result("rpc", {"method": "context"}))["data"]
        assert context["remote_addr"] == "127.0.0.1"
        assert context["headers"] == {
            "cookie": "session=bob",
            "x-tenant": "acme",
            "user-agent": "browser/1",
            "host": f"127.0.0.1:{hub.port}",
        }
        await client.close()
    if backend == "proxy":
        # The chosen headers are HTTP headers of the POST too, but for those that frame it;
        # the static headers win over a chosen one of the same name.
        http = next(request["http"] for request in seen if request["event"] == "rpc")
        assert http["cookie"] == "session=bob" and http["x-tenant"] == "acme"
        assert http["x-hub-key"] == "k-3f9a" and http["user-agent"] == "fastws-hub-eu"
        assert http["host"] == base.removeprefix("http://")
        assert "x-not-chosen" not in http


@contextlib.asynccontextmanager
async def failing_backend(kind: str) -> AsyncIterator[str]:
    """The base URL of a backend that is ``slow`` (never answers) or ``down`` (no listener)."""
    if kind == "slow":
        async with silent_backend() as base:
            yield base
        return
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("failing", ["slow", "down"])
@run_async(loops=("uvloop",), timeout=30)
async def test_slow_or_down_refresh_and_notify_endpoints_fail_fast_each_on_its_own_breaker(
    failing, monkeypatch
) -> None:
    """The connection outlives its failing refresh; disconnects are not held up by their
    notifications; those two endpoints' circuits open while the others stay closed."""
    monkeypatch.setattr(session_module, "REFRESH_RETRY", 0.1)
    async with proxy_backend() as live, failing_backend(failing) as broken:
        options = proxy_options(live)
        options["proxy_refresh_endpoint"] = f"{broken}/refresh"
        options["proxy_notify_endpoint"] = f"{broken}/notify"
        namespaces = [HOOKED_ROOMS]
        async with running_hub(insecure=False, namespaces=namespaces, **TIMEOUTS, **options) as hub:
            breakers = hub.node.hooks.proxy.breakers()
            short = await connect_as(hub, "short")
            await short.result("connect", {})
            for _ in range(3):
                leaving = await connect_as(hub, "bob")
                await leaving.result("connect", {})
                await leaving.close()
            await until(lambda: breakers["refresh"].state == "open", "the refresh circuit open")
            await until(lambda: breakers["notify"].state == "open", "the notify circuit open")
            assert (await short.result("rpc", {"method": "echo", "data": 1}))["data"] == 1
            assert breakers["rpc"].state == breakers["connect"].state == "closed"
            [session] = hub.node.sessions.values()
            assert not session.closed and session.credentials.user == "short"
            await short.close()
