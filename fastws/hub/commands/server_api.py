"""The server API as Python calls: what a backend does over HTTP, for code inside the hub
(hooks, an application that embeds it).

    api = hub.server_api
    await api.subscribe(user="alice", channel="news")
    await api.publish(channel="news", data={"text": "hi"})
    await api.call("presence_stats", channel="news")

Every command of the HTTP API is a method of the same name taking the same fields as
keyword arguments, checked the same way; a result is what ``result`` holds over HTTP, a
refusal raises ``HubError`` with the code HTTP would answer. Publication data may be any
JSON-ready value, or bytes (binary data). Results are plain Python values, decoded from the
JSON HTTP would send: the commands embed stored data as encoded JSON, which a caller
could not read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from fastws.hub.commands.context import Context
from fastws.hub.commands.spec import as_hub_error
from fastws.hub.commands.table import API_COMMANDS
from fastws.hub.protocol import codes

if TYPE_CHECKING:
    from fastws.hub.node import Node


class ServerApi:
    """The server API of one node: every permission, effects on the whole cluster."""

    def __init__(self, node: Node) -> None:
        self.context = Context(node)

    async def call(self, method: str, **params: Any) -> Any:
        command = API_COMMANDS.get(method)
        if command is None:
            raise codes.HubError(codes.NOT_FOUND, f"no server API command {method!r}")
        try:
            result = await command.run(self.context, params)
        except Exception as exc:
            error = as_hub_error(exc)
            if error is None or error is exc:
                raise
            raise error from exc
        return orjson.loads(orjson.dumps(result))

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name in API_COMMANDS:
            return partial(self.call, name)
        raise AttributeError(f"the server API has no command {name!r}")


__all__ = ["ServerApi"]
