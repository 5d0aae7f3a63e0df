"""An unbounded queue read with ``async for``: publications of a subscription, private messages."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Inbox:
    """Items wait here until the application iterates; ``finish`` ends it (or makes it raise)."""

    def __init__(self) -> None:
        self._items: deque = deque()
        self._waiter: asyncio.Future | None = None
        self._ended = False
        self._error: BaseException | None = None

    def put(self, item: Any) -> None:
        self._items.append(item)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        if not self._ended:
            self._ended, self._error = True, error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __len__(self) -> int:
        return len(self._items)

    def __aiter__(self) -> Inbox:
        return self

    async def __anext__(self) -> Any:
        while not self._items:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


__all__ = ["Inbox"]
