"""Running coroutine tests on uvloop and on asyncio's own loop, bounded in time."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


def run_async(timeout: float = 30.0, loops: tuple[str, ...] = ("uvloop", "asyncio")):
    """Turn ``async def test_x(...)`` into a test run once per loop, with a deadline.

    After the coroutine, the loop must hold no task: a leaked task fails the test.
    """

    def decorate(fn: Callable[..., Coroutine[Any, Any, None]]):
        @pytest.mark.parametrize("loop_name", loops)
        @functools.wraps(fn)
        def wrapper(*args: Any, loop_name: str, **kwargs: Any) -> None:
            loop = LOOPS[loop_name]()
            try:
                async def main() -> None:
                    async with asyncio.timeout(timeout):
                        await fn(*args, **kwargs)
                    await asyncio.sleep(0)
                    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                    assert not leftover, f"tasks left running: {leftover}"

                loop.run_until_complete(main())
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        params.append(inspect.Parameter("loop_name", inspect.Parameter.KEYWORD_ONLY))
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return wrapper

    return decorate
