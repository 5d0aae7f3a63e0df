"""What the client raises besides the hub's own error replies (``HubError``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastws.hub.protocol.codes import HubError


class CommandTimeout(HubError, TimeoutError):
    """No reply within the command timeout (code 408)."""

    def __init__(self, method: str, timeout: float) -> None:
        super().__init__(408, f"no reply to {method!r} within {timeout:g} s")


class Disconnected(HubError):
    """The connection ended before the command could complete; ``code`` is the close code."""

    def __init__(self, code: int, reason: str, reconnect: bool = True) -> None:
        super().__init__(code, reason or "disconnected")
        self.reconnect = reconnect


def may_reconnect(code: int) -> bool:
    """Close codes 4500-4999 mean "do not come back without a change"; all others may retry."""
    return not 4500 <= code <= 4999


@contextlib.asynccontextmanager
async def command_deadline(method: str, timeout: float) -> AsyncIterator[None]:
    """Bound the wait for ``method``'s reply; running out raises ``CommandTimeout``."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError as exc:
        if isinstance(exc, HubError):  # a CommandTimeout from a deadline inside this one
            raise
        raise CommandTimeout(method, timeout) from None


__all__ = ["CommandTimeout", "Disconnected", "HubError", "command_deadline", "may_reconnect"]
