"""Waiting for something to become true, bounded in time: the one poll loop of the tests."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

Description = str | Callable[[], str]  # what is awaited, or a function that says it on failure

# How long a single wait for an answer that must come (a reply, a push, an HTTP response)
# lasts before the test fails: generous, because `make test` runs the suite beside the
# Autobahn runs on a busy machine, and a wait that ends early costs nothing.
PATIENCE = 30.0


def failure(what: Description, timeout: float) -> AssertionError:
    return AssertionError(f"not true within {timeout} s: {what() if callable(what) else what}")


async def until(
    predicate: Callable[[], Any], what: Description, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll ``predicate`` (plain or async) until it returns something true, and return that.

    The event loop keeps running between polls; after ``timeout`` seconds the test fails
    saying ``what`` was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise failure(what, timeout)
        await asyncio.sleep(interval)


def until_blocking(
    predicate: Callable[[], Any], what: Description, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """``until`` for code that runs outside an event loop (starting processes, sync fixtures)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise failure(what, timeout)
        time.sleep(interval)
