"""In-process hooks: the async functions of a Python module, called with no network hop.

``hooks = "myapp.realtime"`` names the module; each of ``on_connect``,
``on_subscribe``, ``on_publish``, ``on_rpc``, ``on_refresh``, ``on_disconnect``,
``on_channel_occupied`` and ``on_channel_vacated`` that it defines is called
for its event (see ``contract``), the others are not hooked.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from fastws.hub.config import ConfigError
from fastws.hub.hooks.contract import EVENTS, NOTIFICATIONS, WITHOUT_CONTEXT, HookContext


class ModuleHooks:
    """The hook functions a module defines, by event."""

    def __init__(self, name: str) -> None:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"hooks: cannot import {name!r}: {exc}") from None
        self.name = name
        self.functions: dict[str, Callable[..., Any]] = {}
        for event in (*EVENTS, *NOTIFICATIONS):
            function = getattr(module, f"on_{event}", None)
            if function is None:
                continue
            if not inspect.iscoroutinefunction(function):
                raise ConfigError(f"hooks: {name}.on_{event} must be an async function")
            self.functions[event] = function

    def handles(self, event: str) -> bool:
        return event in self.functions

    async def call(self, event: str, ctx: HookContext | None, fields: dict[str, Any]) -> Any:
        function = self.functions[event]
        if event in WITHOUT_CONTEXT:
            return await function(*fields.values())
        return await function(ctx, *fields.values())


__all__ = ["ModuleHooks"]
