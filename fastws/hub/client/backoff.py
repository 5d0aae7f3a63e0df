"""How long to wait before trying again: exponential backoff with full jitter."""

from __future__ import annotations

import random
from typing import Any


def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    factor: float = 2.0,
    maximum: float = 20.0,
    rng: random.Random | Any = random,
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0 for the first): full jitter.

    A uniform pick in ``[0, min(maximum, base * factor**attempt)]`` spreads a
    crowd of clients that lost the same server over the whole window instead of
    letting them come back in waves.
    """
    try:
        cap = min(maximum, base * factor**attempt)
    except OverflowError:
        cap = maximum
    return rng.uniform(0.0, cap)


__all__ = ["backoff_delay"]
