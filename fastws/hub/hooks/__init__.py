"""The application's backend in the loop: hooks run in-process or behind an HTTP proxy.

``contract`` is the one contract (events, context, results, refusals); ``module``
calls the async functions of a Python module (``hooks = "myapp.realtime"``);
``proxy`` POSTs the same shapes as JSON to per-event endpoints. ``Hooks`` picks,
per event, the module's function when it defines one, else the endpoint; bounds
each call by the event's timeout; and turns every failure into an answer the
client can act on: a refusal is the backend's error, anything else (raised,
slow, down, a circuit open, a malformed answer) is 502 and a line in the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from fastws.hub.config import ConfigError, HubConfig
from fastws.hub.hooks.contract import (
    EVENTS,
    KEEP,
    NOTIFICATIONS,
    ConnectResult,
    HookContext,
    HookFailed,
    RefreshResult,
    Refuse,
    SubscribeResult,
    Upgrade,
    connect_result,
    publish_result,
    refresh_result,
    rpc_result,
    subscribe_result,
)
from fastws.hub.hooks.module import ModuleHooks
from fastws.hub.hooks.proxy import ProxyHooks
from fastws.hub.protocol import codes
from fastws.hub.protocol import data as hub_data

logger = logging.getLogger("fastws.hub")

OCCUPANCY = ("channel_occupied", "channel_vacated")  # counted by the broker, for the whole hub
BACKEND_FAILED = "the application's backend failed to answer; try again later"


class Hooks:
    """The hooks in force: per event, the module's function or else the proxy endpoint.
    ``module``, when given, is used in place of the module ``config.hooks`` names."""

    def __init__(self, config: HubConfig, module: object | None = None) -> None:
        source = module if module is not None else config.hooks
        self.module = ModuleHooks(source) if source else None
        endpoints = {
            event: url
            for event in EVENTS
            if (url := getattr(config, f"proxy_{event}_endpoint")) is not None
        }
        notify = config.proxy_notify_endpoint
        static = config.proxy_static_headers
        events = config.proxy_notify_events
        self.proxy = ProxyHooks(endpoints, notify, static, events) if endpoints or notify else None
        self.timeouts = {
            event: getattr(config, f"{event}_hook_timeout") for event in (*EVENTS, "notify")
        }
        self._backends = {}
        for event in (*EVENTS, *NOTIFICATIONS):
            for backend in (self.module, self.proxy):
                if backend is not None and backend.handles(event):
                    self._backends[event] = backend
                    break

    def has(self, event: str) -> bool:
        return event in self._backends

    def refuse_occupancy(self, broker: str) -> None:
        """Raise ConfigError when channel_occupied or channel_vacated is hooked: ``broker``
        does not count the nodes of each channel, so it could never tell them."""
        hooked = [e for e in OCCUPANCY if e in self._backends]
        if not hooked:
            return
        why = (
            f"hooks: {' and '.join(hooked)} cannot be told with the {broker}, which does not "
            "count the nodes of each channel (docs/deployment.md)"
        )
        if any(self._backends[e] is self.proxy for e in hooked):
            why += (
                "; proxy_notify_endpoint can still get disconnect: "
                'set proxy_notify_events = ["disconnect"]'
            )
        raise ConfigError(why)

    @property
    def empty(self) -> bool:
        return not self._backends and not (self.module and self.module.functions)

    async def start(self, api: Any) -> None:
        """The module's ``on_start(api)``: a failure stops the hub from starting."""
        if self.module is not None:
            await self.module.start(api)

    async def stop(self) -> None:
        """The module's ``on_stop()``, bounded like a notification; a failure is logged."""
        if self.module is None:
            return
        try:
            await asyncio.wait_for(self.module.stop(), self.timeouts["notify"])
        except Exception as exc:
            logger.warning("fastws hub: the stop hook failed: %s", _why(exc))

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()

    # -- events ---------------------------------------------------------------------------

    async def connect(self, ctx: HookContext) -> ConnectResult:
        return connect_result(await self._call("connect", ctx, {}))

    async def subscribe(self, ctx: HookContext, channel: str, data: Any) -> SubscribeResult:
        fields = {"channel": channel, "data": data}
        return subscribe_result(await self._call("subscribe", ctx, fields))

    async def publish(self, ctx: HookContext, channel: str, data: bytes) -> bytes:
        """The data to publish (as carried: ``fastws.hub.protocol.data``), as given or as
        the hook replaced it. Hooks see binary data as ``bytes``."""
        value = hub_data.payload(data) if hub_data.is_binary(data) else orjson.loads(data)
        fields = {"channel": channel, "data": value}
        replaced = publish_result(await self._call("publish", ctx, fields))
        return data if replaced is KEEP else hub_data.encode(replaced)

    async def rpc(self, ctx: HookContext, method: str, data: Any) -> Any:
        return rpc_result(await self._call("rpc", ctx, {"method": method, "data": data}))

    async def refresh(self, ctx: HookContext) -> RefreshResult:
        return refresh_result(await self._call("refresh", ctx, {}))

    async def notify(self, event: str, ctx: HookContext | None, **fields: Any) -> None:
        """A notification; its failure is logged and harms nobody."""
        backend = self._backends.get(event)
        if backend is None:
            return
        try:
            await asyncio.wait_for(backend.call(event, ctx, fields), self.timeouts["notify"])
        except Exception as exc:
            logger.warning("fastws hub: the %s hook failed: %s", event, _why(exc))

    async def _call(self, event: str, ctx: HookContext, fields: dict[str, Any]) -> Any:
        backend = self._backends[event]
        timeout = self.timeouts[event]
        try:
            # wait_for, not asyncio.timeout: the node may run a command outside any task
            return await asyncio.wait_for(backend.call(event, ctx, fields), timeout)
        except Refuse as refusal:
            error = codes.HubError(refusal.code, refusal.message)
            if refusal.disconnect is not None:
                error.disconnect = codes.Disconnect(*refusal.disconnect)
            raise error from None
        except TimeoutError:
            why = f"no answer within {timeout:g} s"
        except HookFailed as exc:
            why = str(exc)
        except Exception as exc:  # a bug in an in-process hook
            logger.exception("fastws hub: the %s hook raised", event)
            why = _why(exc)
        logger.warning("fastws hub: the %s hook failed: %s", event, why)
        raise codes.HubError(codes.BACKEND_ERROR, f"{event}: {BACKEND_FAILED}")


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


def load_hooks(config: HubConfig, module: object | None = None) -> Hooks | None:
    """The configured hooks (with ``module`` in place of ``config.hooks`` when given),
    or None when nothing is hooked."""
    hooks = Hooks(config, module)
    if hooks.empty:
        if hooks.module is not None:
            raise ConfigError(
                f"hooks: {hooks.module.name!r} defines none of the on_* hook functions"
            )
        return None
    return hooks


__all__ = [
    "ConnectResult",
    "HookContext",
    "Hooks",
    "RefreshResult",
    "Refuse",
    "SubscribeResult",
    "Upgrade",
    "load_hooks",
]
