"""When to ask for a new token: read a JWT's ``exp`` (without verifying it: the hub does)
and plan the refresh a while before it."""

from __future__ import annotations

import base64
import binascii
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

REFRESH_AHEAD_MAX = 60.0  # seconds before exp, at most


def token_expiry(token: Any) -> float | None:
    """The ``exp`` claim of a JWT in seconds since the epoch; None without one."""
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    payload = token.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def refresh_delay(exp: float, now: float) -> float:
    """Seconds from ``now`` until a token expiring at ``exp`` should be replaced: a quarter
    of its remaining life before it ends, a minute before at most."""
    left = exp - now
    return max(0.0, left - min(REFRESH_AHEAD_MAX, left / 4))


async def call_token_source(source: Callable[..., Any], *args: Any) -> str | None:
    """The token a plain or async callback returns."""
    token = source(*args)
    if inspect.isawaitable(token):
        token = await token
    return token


TokenSource = Callable[[], "str | Awaitable[str] | None"]
SubscriptionTokenSource = Callable[[str], "str | Awaitable[str | None] | None"]

__all__ = [
    "SubscriptionTokenSource",
    "TokenSource",
    "call_token_source",
    "refresh_delay",
    "token_expiry",
]
