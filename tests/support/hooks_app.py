"""An application's hooks for the tests: the same functions run in-process
(``hooks = "tests.support.hooks_app"``) and behind the HTTP proxy (``proxy_app``
serves them over aiohttp), so both paths are held to one behaviour.

A cookie ``session=NAME`` names the user; ``banned`` is refused, ``slow`` makes
the hook sleep past any test timeout, ``crash`` makes it raise, ``short`` gets
a connection that expires in a second (then ``on_refresh`` decides from
``meta``); so do ``crash-on-refresh`` and ``slow-on-refresh``, whose first refresh
fails that way. Channels and methods named ``slow``/``crash`` do as their names say;
a ``...vip`` channel gives its subscriber an info of its own; the method ``context``
answers what the hook was told of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from fastws.hub.hooks import HookContext, Refuse

SLOW = 30.0
notifications: list[tuple] = []  # (event, ...) in the order they came
refreshes: list[str] = []  # users whose refresh hook ran


def _name(ctx: HookContext) -> str | None:
    for part in ctx.headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "session":
            return value
    return None


async def _behave(name: str) -> None:
    if name.endswith("slow"):
        await asyncio.sleep(SLOW)
    if name.endswith("crash"):
        raise RuntimeError("the backend broke")


async def on_connect(ctx: HookContext) -> dict[str, Any]:
    name = _name(ctx)
    if name is None:
        raise Refuse("log in first", 401)
    if name == "banned":
        raise Refuse("banned", 403, disconnect=(4600, "banned for a week"))
    await _behave(name)
    result: dict[str, Any] = {
        "user": name,
        "info": {"name": name.title()},
        "meta": {"role": "admin" if name == "alice" else "member", "keep": name != "gone"},
        "data": {"welcome": name},
    }
    if name in ("short", "gone") or name.endswith("-on-refresh"):
        result["expire_at"] = time.time() + 1
    if name == "alice":
        result["channels"] = [f"personal:{name}"]
    return result


async def on_subscribe(ctx: HookContext, channel: str, data: Any) -> dict[str, Any] | None:
    await _behave(channel)
    if channel.endswith("secret"):
        raise Refuse(f"{ctx.user} may not read {channel}")
    if channel.endswith("vip"):  # shown in this channel's presence, join and leave
        return {"info": {"name": ctx.info["name"], "badge": "vip"}}
    return {"data": {"channel": channel, "asked": data}}


async def on_publish(ctx: HookContext, channel: str, data: Any) -> dict[str, Any] | None:
    await _behave(channel)
    if not isinstance(data, dict) or not data.get("text"):
        raise Refuse("a message needs text", 400)
    if data.get("keep"):
        return None
    return {"data": {"text": data["text"].strip(), "by": ctx.user}}


async def on_rpc(ctx: HookContext, method: str, data: Any) -> dict[str, Any]:
    await _behave(method)
    if method == "whoami":
        return {"data": {"user": ctx.user, "client": ctx.client, "meta": ctx.meta}}
    if method == "echo":
        return {"data": data}
    if method == "context":
        return {"data": {"headers": ctx.headers, "remote_addr": ctx.remote_addr}}
    raise Refuse(f"no method {method!r}", 404)


async def on_refresh(ctx: HookContext) -> dict[str, Any]:
    refreshes.append(ctx.user)
    if ctx.user.endswith("-on-refresh") and refreshes.count(ctx.user) == 1:
        await _behave(ctx.user.removesuffix("-on-refresh"))
    if not ctx.meta["keep"]:
        return {"expired": True}
    return {"expire_at": time.time() + 3600, "info": {"name": "Refreshed"}}


async def on_disconnect(ctx: HookContext, code: int, reason: str) -> None:
    notifications.append(("disconnect", ctx.user, code))


async def on_channel_occupied(channel: str) -> None:
    notifications.append(("occupied", channel))


async def on_channel_vacated(channel: str) -> None:
    notifications.append(("vacated", channel))


HOOKS = {
    "connect": on_connect,
    "subscribe": on_subscribe,
    "publish": on_publish,
    "rpc": on_rpc,
    "refresh": on_refresh,
}
ARGS = {"subscribe": ("channel", "data"), "publish": ("channel", "data"), "rpc": ("method", "data")}
NOTIFY = {
    "disconnect": lambda r: on_disconnect(_context(r), r["code"], r["reason"]),
    "channel_occupied": lambda r: on_channel_occupied(r["channel"]),
    "channel_vacated": lambda r: on_channel_vacated(r["channel"]),
}


def _context(request: dict) -> HookContext:
    return HookContext(
        request["client"],
        request["user"],
        request["headers"],
        request["remote_addr"],
        request["protocol"],
        request.get("info"),
        request.get("meta"),
    )


def proxy_app(seen: list[dict] | None = None) -> web.Application:
    """The same hooks over HTTP, one endpoint per event (``/connect``...) and ``/notify``;
    ``seen`` gets each request's body, with its HTTP headers (names lowercased) as ``http``."""

    async def handle(request: web.Request) -> web.Response:
        event = request.match_info["event"]
        body = orjson.loads(await request.read())
        if seen is not None:
            http = {name.lower(): value for name, value in request.headers.items()}
            seen.append({"event": event, **body, "http": http})
        if event == "notify":
            await NOTIFY[body["event"]](body)
            return web.json_response({})
        args = [body[name] for name in ARGS.get(event, ())]
        try:
            result = await HOOKS[event](_context(body), *args)
        except Refuse as refusal:
            answer: dict[str, Any] = {"error": {"code": refusal.code, "message": refusal.message}}
            if refusal.disconnect is not None:
                code, reason = refusal.disconnect
                answer["disconnect"] = {"code": code, "reason": reason}
            return web.json_response(answer)
        except RuntimeError:
            return web.Response(status=500, text="the backend broke")
        return web.json_response({"result": result})

    app = web.Application()
    app.router.add_post("/{event}", handle)
    return app


@contextlib.asynccontextmanager
async def proxy_backend(seen: list[dict] | None = None) -> AsyncIterator[str]:
    """The test application behind HTTP; yields its base URL."""
    # Handlers of a slow backend end with the hub's request, not 30 s later.
    runner = web.AppRunner(proxy_app(seen), handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
