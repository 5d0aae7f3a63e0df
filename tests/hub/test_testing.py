"""The testing kit: a hub in the test's loop with the application's hooks, connected clients,
and the pytest plugin as an application's conftest uses it."""

from __future__ import annotations

import asyncio
import re
import textwrap

import pytest

from fastws.hub.app import Hub
from fastws.hub.client import HubError
from fastws.hub.config import ConfigError
from fastws.hub.hooks import HookContext, Refuse
from fastws.hub.namespaces import Namespace
from fastws.hub.testing import config_for_tests, start_hub
from tests.support.hub import api
from tests.support.loops import run_async
from tests.support.polling import PATIENCE

pytest_plugins = ["pytester"]

ROOMS = Namespace("room", history_size=10, history_ttl=60, allow_subscribe_for_client=True,
                  publish_hook=True)
PERSONAL = Namespace("personal", history_size=10, history_ttl=60, allow_user_limited_channels=True)


class Backend:
    """An application's hooks as an object that holds its state (here, what was stored)."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, str, str]] = []

    async def on_connect(self, ctx: HookContext) -> dict:
        cookie = ctx.headers.get("cookie", "")
        if not cookie.startswith("session="):
            raise Refuse("log in first", 401, disconnect=(4601, "no session"))
        user = cookie.removeprefix("session=")
        return {"user": user, "channels": [f"personal:#{user}"]}

    async def on_publish(self, ctx: HookContext, channel: str, data: dict) -> dict:
        if not data.get("text"):
            raise Refuse("a message needs text", 400)
        self.stored.append((channel, ctx.user, data["text"]))
        return {"data": {"id": len(self.stored), "text": data["text"]}}

    async def on_rpc(self, ctx: HookContext, method: str, data: object) -> dict:
        return {"data": {"method": method, "stored": len(self.stored)}}


async def next_publication(sub) -> object:
    async with asyncio.timeout(PATIENCE):
        return (await anext(aiter(sub))).data


@run_async(loops=("uvloop",))
async def test_a_hooks_object_runs_in_the_hub_and_clients_come_connected() -> None:
    backend = Backend()
    async with start_hub(backend, namespaces=[ROOMS, PERSONAL]) as hub:
        ann = await hub.client(cookies={"session": "ann"})
        bob = await hub.client(headers={"Cookie": "session=bob"})
        assert (ann.user, bob.user) == ("ann", "bob")
        assert list(bob.server_subscriptions) == ["personal:#bob"]

        room = await bob.subscribe("room:1")
        await ann.publish("room:1", {"text": "hi"})
        assert await next_publication(room) == {"id": 1, "text": "hi"}
        assert backend.stored == [("room:1", "ann", "hi")]
        with pytest.raises(HubError) as refused:
            await ann.publish("room:1", {"text": ""})
        assert refused.value.code == 400
        assert await ann.rpc("count") == {"method": "count", "stored": 1}

        await hub.server_api.publish(channel="personal:#bob", data={"nudge": "ann"})
        assert await next_publication(bob.server_subscriptions["personal:#bob"]) == {"nudge": "ann"}



@run_async(loops=("uvloop",))
async def test_a_refused_connect_raises_and_leaves_nothing_running() -> None:
    async with start_hub(Backend(), namespaces=[ROOMS, PERSONAL]) as hub:
        with pytest.raises(HubError) as refused:
            await hub.client(cookies={"theme": "dark"})
        assert (refused.value.code, refused.value.message) == (401, "log in first")
        # run_async fails the test if the refused client left a task behind


@run_async(loops=("uvloop", "asyncio"))
async def test_tokens_of_the_kit_and_its_http_api() -> None:
    async with start_hub(namespaces=[ROOMS]) as hub:  # no hooks: tokens alone
        carol = await hub.client("carol", claims={"channels": ["room:*"], "info": {"n": 1}})
        assert carol.user == "carol"
        room = await carol.subscribe("room:2")
        status, body = await api(hub.port, "POST", "/api/v1/publish",
                                 {"channel": "room:2", "data": {"via": "http"}}, hub.api_key)
        assert status == 200, body
        assert await next_publication(room) == {"via": "http"}
        status, _ = await api(hub.port, "POST", "/api/v1/publish", {"channel": "room:2"}, "wrong")
        assert status == 401


@run_async(loops=("uvloop",))
async def test_a_config_file_gives_namespaces_and_hooks_but_not_ports_nor_keys(tmp_path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(textwrap.dedent("""
        hooks = "tests.support.hooks_app"
        port = 1
        internal_port = 2
        api_key_file = "/nonexistent/key"
        jwt_secret_file = "/nonexistent/secret"

        [[namespaces]]
        name = "personal"
        history_size = 10
        history_ttl = 60
    """))
    async with start_hub(config_file=str(config)) as hub:
        assert hub.port not in (1, 2) and hub.hub.internal_port is None
        alice = await hub.client(cookies={"session": "alice"})  # hooks_app's on_connect
        assert list(alice.server_subscriptions) == ["personal:alice"]
        with pytest.raises(HubError) as refused:
            await hub.client(cookies={"session": "banned"})
        assert refused.value.code == 403
        assert hub.config.hooks == "tests.support.hooks_app"


class NotHooks:
    async def connect(self, ctx: HookContext) -> dict:  # not on_connect
        return {"user": "x"}


class SyncHooks:
    def on_connect(self, ctx: HookContext) -> dict:
        return {"user": "x"}


@pytest.mark.parametrize(
    ("hooks", "why"),
    [(NotHooks(), "'NotHooks' defines none of the on_* hook functions"),
     (SyncHooks(), "SyncHooks.on_connect must be an async function")],
)
def test_a_hooks_object_is_checked_as_a_module_is(hooks, why) -> None:
    with pytest.raises(ConfigError, match=re.escape(why)):
        Hub(config_for_tests(), hooks=hooks)


@run_async(loops=("uvloop",))
async def test_the_hub_closes_its_clients() -> None:
    async with start_hub(namespaces=[ROOMS]) as hub:
        client = await hub.client("dan")
        port = hub.port
    assert client.state == "closed"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


APPLICATION_TESTS = '''
import asyncio

import pytest

from fastws.hub.hooks import Refuse
from fastws.hub.namespaces import Namespace

pytest_plugins = ["fastws.hub.testing"]


class Realtime:
    async def on_connect(self, ctx):
        if "session=ok" not in ctx.headers.get("cookie", ""):
            raise Refuse("log in first", 401)
        return {"user": "ok"}

    async def on_rpc(self, ctx, method, data):
        return {"data": [ctx.user, method, data]}


@pytest.fixture
def fastws_hub_options():
    return {"hooks": Realtime(), "namespaces": [Namespace("chat", allow_subscribe_for_client=True)]}


def test_rpc(fastws_hub):
    async def flow():
        async with fastws_hub() as hub:
            client = await hub.client(cookies={"session": "ok"})
            assert await client.rpc("sum", [1, 2]) == ["ok", "sum", [1, 2]]

    asyncio.run(flow())


def test_refused(fastws_hub):
    async def flow():
        async with fastws_hub() as hub:
            with pytest.raises(Exception) as refused:
                await hub.client()
            assert refused.value.code == 401

    asyncio.run(flow())


def test_the_tests_own_options_win(fastws_hub):
    async def flow():
        async with fastws_hub(hooks=None, namespaces=[]) as hub:
            client = await hub.client("eve")
            with pytest.raises(Exception) as refused:
                await client.subscribe("chat:x")
            assert refused.value.code == 404  # chat is not declared here

    asyncio.run(flow())
'''


def test_the_plugin_as_an_application_uses_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=APPLICATION_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3)
