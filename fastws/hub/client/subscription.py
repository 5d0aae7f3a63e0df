"""A channel subscription as the application holds it: callbacks or an iterator, and a position.

The client drives it from the socket callback (the ``_`` methods): pushes that
arrive while a subscribe is in flight are held, then merged with the replay in
the reply so that each publication is delivered once and in offset order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from fastws.hub.client.errors import Disconnected
from fastws.hub.client.inbox import Inbox
from fastws.hub.client.types import History, ReceivedClientInfo, ReceivedPublication
from fastws.hub.protocol.types import StreamPosition

if TYPE_CHECKING:
    from fastws.hub.client.client import Client

Callback = Callable[..., Any]


class Subscription:
    """A channel subscription that survives reconnects.

    Publications go to ``on_publication`` when given, otherwise they queue for
    ``async for pub in sub``. ``position`` is the last offset delivered, sent as
    ``since`` when subscribing again after a reconnect.
    """

    def __init__(
        self,
        client: Client,
        channel: str,
        on_publication: Callback | None,
        on_join: Callback | None,
        on_leave: Callback | None,
        on_resync: Callback | None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.on_publication = on_publication
        self.on_join = on_join
        self.on_leave = on_leave
        self.on_resync = on_resync
        self.epoch: Any = None
        self.offset: int | None = None
        self.recovered: bool | None = None  # outcome of the last subscribe from a position
        self.resyncs = 0  # times the hub could not replay what was missed
        self.active = True
        self._inbox = Inbox() if on_publication is None else None
        self._buffer: list[ReceivedPublication] | None = None  # pushes during a subscribe in flight
        self._forget_position = False
        self._ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._refresher: asyncio.Task | None = None  # renews the subscription token

    @property
    def position(self) -> StreamPosition | None:
        if self.epoch is None or self.offset is None:
            return None
        return StreamPosition(self.offset, self.epoch)

    def __repr__(self) -> str:
        return f"<Subscription {self.channel!r} at {self.position}>"

    def __aiter__(self) -> AsyncIterator[ReceivedPublication]:
        if self._inbox is None:
            raise RuntimeError(f"{self.channel!r} delivers to on_publication; it has no iterator")
        return self._inbox

    async def publish(self, data: Any) -> int:
        return await self.client.publish(self.channel, data)

    async def presence(self) -> dict[str, ReceivedClientInfo]:
        return await self.client.presence(self.channel)

    async def history(
        self, since: StreamPosition | None = None, limit: int | None = None, reverse: bool = False
    ) -> History:
        return await self.client.history(self.channel, since=since, limit=limit, reverse=reverse)

    async def unsubscribe(self) -> None:
        await self.client.unsubscribe(self.channel)

    # -- driven by the client, inside the socket callback -------------------------

    def _subscribe_params(self) -> dict:
        params: dict[str, Any] = {"channel": self.channel}
        position = self.position
        if position is not None and not self._forget_position:
            params["since"] = position.to_wire()
        self._buffer = []
        return params

    def _receive(self, pub: ReceivedPublication) -> None:
        if self._buffer is not None:
            self._buffer.append(pub)
        else:
            self._deliver(pub)

    def _deliver(self, pub: ReceivedPublication) -> None:
        if pub.offset is not None:
            if self.offset is not None and pub.offset <= self.offset:
                return  # already delivered (replay and live push overlap)
            self.offset = pub.offset
        self.client._emit_publication(self, pub)

    def _subscribed(self, result: dict, since_sent: bool) -> None:
        """Apply a subscribe reply: replay, then the pushes that came while it was in flight."""
        had_position = self.epoch is not None
        recovered = bool(result.get("recovered")) and since_sent
        top = result.get("offset")
        if not recovered:
            self.offset = None  # a new stream, or a gap we cannot fill: start from here
        self.epoch = result.get("epoch")
        self._forget_position = False
        replayed = [
            ReceivedPublication.from_wire(self.channel, p, recovered)
            for p in result.get("publications") or ()
        ]
        pending = replayed + (self._buffer or [])
        self._buffer = None
        pending.sort(key=lambda p: -1 if p.offset is None else p.offset)
        if had_position:
            self.recovered = recovered
            if not recovered:
                self.resyncs += 1
                self.client._emit_resync(self)
        for pub in pending:
            self._deliver(pub)
        if isinstance(top, int) and (self.offset is None or top > self.offset):
            self.offset = top

    def _refresh_task(self, refresh: Coroutine) -> None:
        """Run ``refresh`` in place of the refresh of an earlier subscription token."""
        if self._refresher is not None:
            self._refresher.cancel()
        self._refresher = asyncio.create_task(refresh)

    def _end(self, error: BaseException | None = None) -> None:
        self.active = False
        if self._refresher is not None:
            self._refresher.cancel()
        self._buffer = None
        if not self._ready.done():
            self._ready.set_exception(error or Disconnected(1000, "unsubscribed"))
            self._ready.exception()  # the caller may be gone; do not warn about it
        if self._inbox is not None:
            self._inbox.finish(error)


__all__ = ["Callback", "Subscription"]
