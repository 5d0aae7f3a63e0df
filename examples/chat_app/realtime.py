"""The hub's hooks, run inside the hub: ``hooks = "examples.chat_app.realtime"``.

The module's ``on_*`` functions serve the hub that ``python -m fastws`` runs, with
the database under ``CHAT_APP_DATA``. ``Realtime`` is the same hooks as an object
around a ``Store``, which tests hand to ``fastws.hub.testing`` with a database of
their own.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from examples.chat_app import sessions
from examples.chat_app.settings import (
    CHAT_PREFIX,
    LOGGED_OUT,
    data_dir,
    database_path,
    personal_channel,
)
from examples.chat_app.store import Store
from fastws.hub.hooks import HookContext, Refuse

MAX_TEXT = 500  # characters in a message
PAGE = 50  # the most messages history.older returns at once


class Realtime:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.session_key = store.key("sessions")

    async def on_connect(self, ctx: HookContext) -> dict[str, Any]:
        """Who the session cookie names; subscribed to their personal channel."""
        user = sessions.user_from_header(ctx.headers.get("cookie", ""), self.session_key)
        if user is None:
            raise Refuse("log in first", 401, disconnect=LOGGED_OUT)
        return {"user": user, "channels": [personal_channel(user)]}

    async def on_publish(self, ctx: HookContext, channel: str, data: Any) -> dict[str, Any]:
        """A message is text of 1 to MAX_TEXT characters in a chat channel; it is stored,
        and what subscribers receive is the stored row (id, user, text, at)."""
        if not channel.startswith(CHAT_PREFIX):
            raise Refuse(f"messages go to {CHAT_PREFIX} channels only")
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise Refuse("a message needs text", 400)
        text = text.strip()
        if len(text) > MAX_TEXT:
            raise Refuse(f"a message has at most {MAX_TEXT} characters", 400)
        message = await asyncio.to_thread(self.store.add_message, channel, ctx.user, text)
        return {"data": message}

    async def on_rpc(self, ctx: HookContext, method: str, data: Any) -> dict[str, Any]:
        """``history.older {channel, before?, limit?}``: messages before the id ``before``
        (none: the newest), oldest first, as ``{"messages": [...]}``."""
        if method != "history.older":
            raise Refuse(f"no method {method!r}", 404)
        data = data if isinstance(data, dict) else {}
        channel, before, limit = data.get("channel"), data.get("before"), data.get("limit", 20)
        if not isinstance(channel, str) or not channel.startswith(CHAT_PREFIX):
            raise Refuse(f"channel must be a {CHAT_PREFIX} channel", 400)
        if before is not None and not _is_int(before):
            raise Refuse("before must be a message id", 400)
        if not _is_int(limit) or not 1 <= limit <= PAGE:
            raise Refuse(f"limit must be from 1 to {PAGE}", 400)
        messages = await asyncio.to_thread(self.store.older, channel, before, limit)
        return {"data": {"messages": messages}}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@functools.cache
def _hooks() -> Realtime:
    return Realtime(Store(database_path(data_dir())))


async def on_connect(ctx: HookContext) -> dict[str, Any]:
    return await _hooks().on_connect(ctx)


async def on_publish(ctx: HookContext, channel: str, data: Any) -> dict[str, Any]:
    return await _hooks().on_publish(ctx, channel, data)


async def on_rpc(ctx: HookContext, method: str, data: Any) -> dict[str, Any]:
    return await _hooks().on_rpc(ctx, method, data)
