"""The chat's web application (aiohttp): the login form, the page, and waves.

A user logs in with a name and a password (the first login of a name signs it
up) and gets the signed session cookie; the page then talks to the hub itself,
which authenticates it from that cookie (``realtime.on_connect``). A wave is
the application pushing to another user's personal channel through the hub's
server API, over HTTP, as any backend would.
"""

from __future__ import annotations

import asyncio
import html
import importlib.resources
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from examples.chat_app import sessions
from examples.chat_app.settings import LOBBY, LOGGED_OUT, SESSION_COOKIE, personal_channel
from examples.chat_app.store import Store

HERE = Path(__file__).parent
CLIENT_JS = importlib.resources.files("fastws.hub") / "static" / "fastws-client.js"
"""The JavaScript client's browser build, as committed with the hub."""


class ChatSite:
    def __init__(self, store: Store, *, hub_port: int, hub_api: str, api_key: str) -> None:
        self.store = store
        self.session_key = store.key("sessions")
        self.hub_port = hub_port  # where the page's WebSocket goes, on the page's host
        self.hub_api = hub_api.rstrip("/")  # the hub's HTTP API (its internal port)
        self.api_key = api_key
        self.http: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(self._http_client)
        app.add_routes([
            web.get("/", self.index),
            web.get("/login", self.login_form),
            web.post("/login", self.login),
            web.post("/logout", self.logout),
            web.post("/wave", self.wave),
            web.get("/static/fastws-client.js", self.client_js),
        ])
        return app

    async def _http_client(self, app: web.Application) -> AsyncIterator[None]:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        yield
        await self.http.close()

    def user(self, request: web.Request) -> str | None:
        value = request.cookies.get(SESSION_COOKIE)
        return sessions.user_of(value, self.session_key) if value else None

    # -- pages ------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        user = self.user(request)
        if user is None:
            raise web.HTTPFound("/login")
        config = {
            "user": user,
            "hubPort": self.hub_port,
            "lobby": LOBBY,
            "personal": personal_channel(user),
            "loggedOutCode": LOGGED_OUT[0],
        }
        # JSON inside <script>: "<" escaped so that no value can close the element
        text = json.dumps(config).replace("<", "\\u003c")
        return _html((HERE / "page.html").read_text().replace("__CONFIG__", text))

    async def login_form(self, request: web.Request, error: str = "", status: int = 200):
        page = (HERE / "login.html").read_text().replace("__ERROR__", html.escape(error))
        return _html(page, status)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        name = str(form.get("name", "")).strip().lower()
        password = str(form.get("password", ""))
        if not sessions.USER_NAME.fullmatch(name) or not password:
            error = "a name of 1 to 32 letters, digits, _ or -, and a password"
            return await self.login_form(request, error, 400)
        if not await asyncio.to_thread(self.store.log_in, name, password):
            return await self.login_form(request, "wrong password for that name", 401)
        response = web.HTTPFound("/")
        response.set_cookie(
            SESSION_COOKIE,
            sessions.sign(name, self.session_key),
            max_age=sessions.MAX_AGE,
            httponly=True,
            samesite="Lax",
        )
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        response = web.HTTPFound("/login")
        response.del_cookie(SESSION_COOKIE)
        raise response

    async def client_js(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=CLIENT_JS.read_bytes(), content_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})

    # -- the server API -------------------------------------------------------------------

    async def wave(self, request: web.Request) -> web.StreamResponse:
        """``POST /wave`` (form ``to``): a wave in that user's personal channel."""
        user = self.user(request)
        if user is None:
            return web.json_response({"error": "log in first"}, status=401)
        to = str((await request.post()).get("to", "")).strip().lower()
        if not sessions.USER_NAME.fullmatch(to) or not await asyncio.to_thread(
            self.store.user_exists, to
        ):
            return web.json_response({"error": f"no user {to!r}"}, status=404)
        await self.publish(personal_channel(to), {"type": "wave", "from": user})
        return web.json_response({"ok": True})

    async def publish(self, channel: str, data: object) -> None:
        """Publish through the hub's HTTP API; a hub that refuses or is down is a 502."""
        try:
            async with self.http.post(
                f"{self.hub_api}/api/v1/publish",
                json={"channel": channel, "data": data},
                headers={"Authorization": f"apikey {self.api_key}"},
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise web.HTTPBadGateway(text=f"the hub is unreachable: {exc}") from None
        if status != 200:
            raise web.HTTPBadGateway(text=f"the hub answered {status}")


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")
