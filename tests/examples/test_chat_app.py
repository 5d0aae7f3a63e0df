"""examples/chat_app end to end over real sockets: the web application's login gives the
cookie, the hub's hooks authenticate from it, store and validate messages in SQLite,
answer history.older, and the application pushes to a personal channel through the
server API. First in one loop (the hub of fastws.hub.testing beside the aiohttp
application), then as the two processes the README starts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from examples.chat_app import sessions
from examples.chat_app.realtime import MAX_TEXT, Realtime
from examples.chat_app.settings import LOBBY, LOGGED_OUT, SESSION_COOKIE, database_path
from examples.chat_app.store import Store
from examples.chat_app.web import CLIENT_JS, ChatSite
from fastws.hub.client import Client, HubError
from fastws.hub.hooks import HookContext, Refuse
from fastws.hub.testing import HubUnderTest, start_hub
from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess
from tests.support.loops import run_async
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.polling import PATIENCE, until_blocking

HUB_TOML = str(ROOT / "examples" / "chat_app" / "hub.toml")


@dataclass
class Chat:
    hub_port: int
    app_url: str
    http: aiohttp.ClientSession

    async def log_in(self, name: str, password: str = "secret") -> str:
        """The session cookie's value, as the login form sets it."""
        async with self.http.post(f"{self.app_url}/login", data={"name": name, "password": password},
                                  allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            assert response.headers["Location"] == "/"
            return response.cookies[SESSION_COOKIE].value

    async def wave(self, cookie: str | None, to: str) -> tuple[int, dict]:
        cookies = {SESSION_COOKIE: cookie} if cookie else {}
        async with self.http.post(f"{self.app_url}/wave", data={"to": to},
                                  cookies=cookies) as response:
            return response.status, await response.json()


@contextlib.asynccontextmanager
async def web_app(site: ChatSite, port: int = 0) -> AsyncIterator[str]:
    runner = web.AppRunner(site.app(), shutdown_timeout=1)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", port)
    await tcp.start()
    try:
        yield f"http://127.0.0.1:{tcp._server.sockets[0].getsockname()[1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def chat_in_one_loop(tmp_path: Path) -> AsyncIterator[tuple[Chat, HubUnderTest, Store]]:
    """The real hub.toml and hooks (with a database of the test's) under the testing kit,
    the web application talking to that hub's HTTP API."""
    store = Store(tmp_path / "chat.sqlite3")
    async with start_hub(Realtime(store), config_file=HUB_TOML) as hub:
        site = ChatSite(store, hub_port=hub.port, hub_api=hub.http_url, api_key=hub.api_key)
        async with web_app(site) as url, aiohttp.ClientSession() as http:
            yield Chat(hub.port, url, http), hub, store


async def next_data(sub) -> object:
    async with asyncio.timeout(PATIENCE):
        return (await anext(aiter(sub))).data


async def flow(chat: Chat, ann: Client, bob: Client, database: Path) -> None:
    """What a user sees: a message stored and delivered, older ones on request, a wave."""
    lobby = await bob.subscribe(LOBBY)
    await ann.publish(LOBBY, {"text": "  hello bob  "})
    first = await next_data(lobby)
    assert {key: first[key] for key in ("id", "user", "text")} == {"id": 1, "user": "ann",
                                                                  "text": "hello bob"}
    with sqlite3.connect(database) as db:
        assert db.execute("select id, channel, user, text from messages").fetchall() == [
            (1, LOBBY, "ann", "hello bob")
        ]

    for n in range(2, 31):
        await ann.publish(LOBBY, {"text": f"message {n}"})
    latest = await bob.rpc("history.older", {"channel": LOBBY})
    assert [m["id"] for m in latest["messages"]] == list(range(11, 31))  # 20 by default
    older = await bob.rpc("history.older", {"channel": LOBBY, "before": 11, "limit": 8})
    assert [(m["id"], m["text"]) for m in older["messages"]] == [
        (n, f"message {n}") for n in range(3, 11)
    ]

    personal = bob.server_subscriptions["personal:#bob"]
    assert await chat.wave(await chat.log_in("ann"), "bob") == (200, {"ok": True})
    assert await next_data(personal) == {"type": "wave", "from": "ann"}


@run_async(loops=("uvloop",))
async def test_log_in_chat_and_wave_in_one_loop(tmp_path) -> None:
    async with chat_in_one_loop(tmp_path) as (chat, hub, store):
        ann = await hub.client(cookies={SESSION_COOKIE: await chat.log_in("ann")})
        bob = await hub.client(cookies={SESSION_COOKIE: await chat.log_in("bob")})
        assert (ann.user, bob.user) == ("ann", "bob")
        assert list(bob.server_subscriptions) == ["personal:#bob"]
        await flow(chat, ann, bob, Path(store.path))


@run_async(loops=("uvloop",))
async def test_the_app_serves_the_page_with_the_committed_client(tmp_path) -> None:
    async with chat_in_one_loop(tmp_path) as (chat, _, _):
        async with chat.http.get(f"{chat.app_url}/", allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (302, "/login")
        cookie = await chat.log_in("ann")
        async with chat.http.get(f"{chat.app_url}/", cookies={SESSION_COOKIE: cookie}) as response:
            page = await response.text()
        assert response.status == 200
        config = page.split('<script id="config" type="application/json">')[1].split("</script>")[0]
        assert orjson.loads(config) == {"user": "ann", "hubPort": chat.hub_port, "lobby": LOBBY,
                                        "personal": "personal:#ann", "loggedOutCode": LOGGED_OUT[0]}
        assert 'from "/static/fastws-client.js"' in page
        async with chat.http.get(f"{chat.app_url}/static/fastws-client.js") as response:
            assert response.content_type == "text/javascript"
            assert await response.read() == CLIENT_JS.read_bytes()


@run_async(loops=("uvloop",))
async def test_refusals(tmp_path) -> None:
    async with chat_in_one_loop(tmp_path) as (chat, hub, store):
        # no cookie, a forged one: the connect hook refuses, with its close code
        forged = sessions.sign("ann", "not the key")
        for headers in ((), (("Cookie", f"{SESSION_COOKIE}={forged}"),)):
            raw = await HubClient.open(hub.port, headers=headers, connect=False)
            assert await raw.error("connect", {}) == (401, "log in first")
            assert await raw.closed() == LOGGED_OUT
        with pytest.raises(HubError) as refused:
            await hub.client()
        assert refused.value.code == 401

        ann = await hub.client(cookies={SESSION_COOKIE: await chat.log_in("ann")})
        for data, why in (({"text": "  "}, "a message needs text"),
                          ({"text": "x" * (MAX_TEXT + 1)}, f"at most {MAX_TEXT} characters"),
                          ("just a string", "a message needs text")):
            with pytest.raises(HubError, match=why) as refused:
                await ann.publish(LOBBY, data)
            assert refused.value.code == 400
        with pytest.raises(HubError) as refused:  # only bob may subscribe or publish there
            await ann.publish("personal:#bob", {"text": "hi"})
        assert refused.value.code == 403
        for data, code in (({"channel": "personal:#ann"}, 400), ({"channel": LOBBY, "limit": 0}, 400),
                           ({"channel": LOBBY, "before": "x"}, 400)):
            with pytest.raises(HubError) as refused:
                await ann.rpc("history.older", data)
            assert refused.value.code == code
        with pytest.raises(HubError) as refused:
            await ann.rpc("history.newer", {"channel": LOBBY})
        assert refused.value.code == 404
        with sqlite3.connect(store.path) as db:
            assert db.execute("select count(*) from messages").fetchone() == (0,)

        # the web application: passwords, names, waves
        async with chat.http.post(f"{chat.app_url}/login", data={"name": "ann", "password": "nope"},
                                  allow_redirects=False) as response:
            assert response.status == 401 and "wrong password" in await response.text()
        async with chat.http.post(f"{chat.app_url}/login", data={"name": "a b", "password": "x"},
                                  allow_redirects=False) as response:
            assert response.status == 400
        assert (await chat.wave(None, "ann"))[0] == 401
        assert (await chat.wave(await chat.log_in("ann"), "nobody"))[0] == 404


@run_async(loops=("uvloop",))
async def test_a_wave_while_the_hub_is_down_is_a_bad_gateway(tmp_path) -> None:
    store = Store(tmp_path / "chat.sqlite3")
    site = ChatSite(store, hub_port=free_port(), hub_api=f"http://127.0.0.1:{free_port()}",
                    api_key="k")
    async with web_app(site) as url, aiohttp.ClientSession() as http:
        chat = Chat(0, url, http)
        await chat.log_in("bob")
        async with http.post(f"{url}/wave", data={"to": "bob"},
                             cookies={SESSION_COOKIE: await chat.log_in("ann")}) as response:
            assert response.status == 502
            assert "the hub is unreachable" in await response.text()


def test_the_publish_hook_keeps_to_chat_channels(tmp_path) -> None:
    hooks = Realtime(Store(tmp_path / "chat.sqlite3"))
    ctx = HookContext("c1", "ann", {}, "127.0.0.1", "json")
    with pytest.raises(Refuse, match="chat: channels only"):
        asyncio.run(hooks.on_publish(ctx, "news", {"text": "hi"}))


def test_a_session_cookie_expires_and_holds_its_name() -> None:
    cookie = sessions.sign("ann", "key", now=1000.0)
    assert sessions.user_of(cookie, "key", now=1000.0 + sessions.MAX_AGE - 1) == "ann"
    assert sessions.user_of(cookie, "key", now=1000.0 + sessions.MAX_AGE + 1) is None
    assert sessions.user_of(cookie.replace("ann", "bob", 1), "key", now=1000.0) is None
    assert sessions.user_from_header(f"theme=dark; {SESSION_COOKIE}={cookie}", "other") is None


# -- as processes, the way the README runs it ------------------------------------------------


class ChatProcesses:
    """``python -m examples.chat_app``, then ``python -m fastws --config
    examples/chat_app/hub.toml``, on free ports (the hub allows the pages of the app's),
    their data in ``data``."""

    def __init__(self, data: Path, log: Path) -> None:
        self.data = data
        self.log = log
        self.app_port, hub_port, self.api_port = free_port(), free_port(), free_port()
        self.app_url = f"http://127.0.0.1:{self.app_port}"
        self.app: subprocess.Popen | None = None
        self.hub = HubProcess(
            "--config", "examples/chat_app/hub.toml", insecure=False, api_key=None,
            env={"CHAT_APP_DATA": str(data), "FASTWS_INTERNAL_PORT": str(self.api_port),
                 "FASTWS_API_KEY_FILE": str(data / "hub_api_key"),
                 "FASTWS_ALLOWED_ORIGINS": self.app_url},
        )
        self.hub.port = hub_port  # the page is told it before the hub starts

    def start(self) -> ChatProcesses:
        env = {**os.environ, "CHAT_APP_DATA": str(self.data),
               "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        with open(self.log, "wb") as log:
            self.app = subprocess.Popen(
                [sys.executable, "-m", "examples.chat_app", "--port", str(self.app_port),
                 "--hub-port", str(self.hub.port), "--hub-api", f"http://127.0.0.1:{self.api_port}"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            until_blocking(lambda: b"chat app on" in self.log.read_bytes() or self.app.poll() is not None,
                           "the app listening", PATIENCE)
            assert self.app.poll() is None, self.log.read_text()
            self.hub.start()  # reads the API key the app wrote
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self.hub.close()
        if self.app is not None:
            self.app.terminate()
            try:
                self.app.wait(PATIENCE)
            except subprocess.TimeoutExpired:
                self.app.kill()
                self.app.wait()

    def __enter__(self) -> ChatProcesses:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@run_async(loops=("uvloop",), timeout=60)
async def test_the_two_commands_of_the_readme(tmp_path) -> None:
    processes = ChatProcesses(tmp_path / "data", tmp_path / "app.log")
    await asyncio.to_thread(processes.start)
    try:
        async with aiohttp.ClientSession() as http:
            chat = Chat(processes.hub.port, processes.app_url, http)
            url = processes.hub.url()
            options = {"backoff_base": 0.05}
            async with (
                Client(url, headers=[("Cookie", f"{SESSION_COOKIE}={await chat.log_in('ann')}")],
                       **options) as ann,
                Client(url, headers=[("Cookie", f"{SESSION_COOKIE}={await chat.log_in('bob')}")],
                       **options) as bob,
            ):
                await flow(chat, ann, bob, database_path(processes.data))
            refused = Client(url, **options)
            with pytest.raises(HubError) as error:
                await refused.connect()
            assert error.value.code == 401
            await refused.close()
    finally:
        await asyncio.to_thread(processes.close)
