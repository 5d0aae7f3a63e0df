"""A Redis server's calls in flight, bounded, and the queue of those that wait.

At most ``size`` calls of a shard are in flight, one per pooled connection; the
others wait here for a slot, in order. So the connection pool never makes a
call wait, and a call's ``broker_timeout`` is spent on the wire alone, however
long it queued. Waiting is what a burst of calls (thousands of clients
subscribing at once) costs; it says nothing about Redis and never feeds the
circuit breaker. The queue is bounded: at most ``max_waiting`` calls wait, none
longer than ``wait`` seconds; a call past either bound is not made and fails at
once with ``BrokerOverloaded`` (error 503, try again later).

Used as ``async with slots:`` around one call; the counts are the shard's status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastws.hub.broker.base import BrokerOverloaded


class CommandSlots:
    """``size`` slots, a queue bounded in length and in time, and what it turned away."""

    def __init__(
        self, name: Callable[[], str], size: int, wait: float, max_waiting: int
    ) -> None:
        """``name`` says which server, when a call is turned away (it may move)."""
        if size < 1 or wait <= 0 or max_waiting < 0:
            raise ValueError("slots: size at least 1, a positive wait, max_waiting not negative")
        self.name = name
        self.size = size
        self.wait = wait
        self.max_waiting = max_waiting
        self.free = asyncio.Semaphore(size)
        self.in_flight = 0
        self.waiting = 0
        self.overloaded = 0  # calls turned away since start

    async def __aenter__(self) -> None:
        if self.free.locked():
            await self._queue()
        else:
            await self.free.acquire()  # a slot is free: taken at once
        self.in_flight += 1

    async def __aexit__(self, *exc_info: object) -> None:
        self.in_flight -= 1
        self.free.release()

    async def _queue(self) -> None:
        if self.waiting >= self.max_waiting:
            raise self._refuse(f"{self.waiting} calls already wait for a connection")
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait):
                await self.free.acquire()
        except TimeoutError:
            raise self._refuse(f"no connection free within {self.wait:g} s") from None
        finally:
            self.waiting -= 1

    def _refuse(self, why: str) -> BrokerOverloaded:
        self.overloaded += 1
        return BrokerOverloaded(
            f"{self.name()} overloaded: {why} ({self.in_flight} in flight, {self.waiting} waiting)"
        )

    def status(self) -> dict[str, int]:
        return {"in_flight": self.in_flight, "waiting": self.waiting, "overloaded": self.overloaded}


__all__ = ["CommandSlots"]
