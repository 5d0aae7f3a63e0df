"""A token bucket: how many commands one connection may send, sustained and at once."""

from __future__ import annotations

import time


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; each command takes one."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = self.burst
        self._stamp = time.monotonic()

    def take(self) -> bool:
        """Take a token; False (and nothing taken) when the bucket is empty."""
        now = time.monotonic()
        tokens = self._tokens + (now - self._stamp) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        self._stamp = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


__all__ = ["TokenBucket"]
