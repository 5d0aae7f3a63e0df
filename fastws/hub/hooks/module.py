"""In-process hooks: the async functions of a Python module, called with no network hop.

``hooks = "myapp.realtime"`` names the module; each of ``on_connect``,
``on_subscribe``, ``on_publish``, ``on_rpc``, ``on_refresh``, ``on_disconnect``,
``on_channel_occupied`` and ``on_channel_vacated`` that it defines is called
for its event (see ``contract``), the others are not hooked. Two more mark the hub's
life: ``on_start(api)`` runs once the hub is up, with its server API as Python calls
(``fastws.hub.commands.server_api``: publish, subscribe a user, disconnect, ...), which
the module keeps for its hooks and background tasks; ``on_stop()`` runs as it shuts
down, before the broker closes. Code that starts a
hub itself (``Hub(config, hooks=...)``, ``fastws.hub.testing``) may give the
module, or any object whose ``on_*`` attributes are async (an instance holding
its database, say), instead of a name.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from fastws.hub.config import ConfigError
from fastws.hub.hooks.contract import EVENTS, NOTIFICATIONS, WITHOUT_CONTEXT, HookContext

LIFECYCLE = ("start", "stop")  # on_start(api), on_stop(): not events, the hub's own life


class ModuleHooks:
    """The hook functions a module (or another object) defines, by event."""

    def __init__(self, source: str | object) -> None:
        if isinstance(source, str):
            try:
                module = importlib.import_module(source)
            except ImportError as exc:
                raise ConfigError(f"hooks: cannot import {source!r}: {exc}") from None
            name = source
        else:
            module = source
            name = getattr(source, "__name__", type(source).__name__)
        self.name = name
        self.functions: dict[str, Callable[..., Any]] = {}
        for event in (*EVENTS, *NOTIFICATIONS, *LIFECYCLE):
            function = getattr(module, f"on_{event}", None)
            if function is None:
                continue
            if not inspect.iscoroutinefunction(function):
                raise ConfigError(f"hooks: {name}.on_{event} must be an async function")
            self.functions[event] = function

    def handles(self, event: str) -> bool:
        return event in self.functions

    async def start(self, api: Any) -> None:
        if "start" in self.functions:
            await self.functions["start"](api)

    async def stop(self) -> None:
        if "stop" in self.functions:
            await self.functions["stop"]()

    async def call(self, event: str, ctx: HookContext | None, fields: dict[str, Any]) -> Any:
        function = self.functions[event]
        if event in WITHOUT_CONTEXT:
            return await function(*fields.values())
        return await function(ctx, *fields.values())


__all__ = ["ModuleHooks"]
