"""A circuit breaker: stop calling a dependency that keeps failing, probe it now and then.

    closed     calls go through; ``threshold`` failures in a row open the circuit
    open       calls fail at once; after the cooldown the owner may probe
    half_open  one probe runs (``try_probe``); success closes, failure opens again

Each failed probe doubles the cooldown up to ``max_cooldown``; closing resets it.
A breaker that never closed yet (``ever_closed`` False) is *starting*, not
degraded. The breaker only keeps state: it runs no timers and calls nothing, so
the owner decides what a probe is and when to make it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
BREAKER_STATES = (CLOSED, OPEN, HALF_OPEN)


class CircuitBreaker:
    """State, counters and the time of the next allowed probe."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 1.0,
        max_cooldown: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        closed: bool = False,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if cooldown <= 0 or max_cooldown < cooldown:
            raise ValueError("cooldown must be positive and max_cooldown at least cooldown")
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self._clock = clock
        self.cooldown = cooldown  # the wait before the next probe
        self.failures = 0  # consecutive failures
        self.trips = 0  # times the circuit opened from closed
        self.ever_closed = closed
        # A breaker made open may probe at once: the first connection attempt.
        self.state = CLOSED if closed else OPEN
        self.retry_at = self._clock()
        self.changed_at = self.retry_at

    @property
    def allows(self) -> bool:
        """May an ordinary call go through now?"""
        return self.state == CLOSED

    def retry_in(self) -> float:
        """Seconds until a probe is allowed (0 when it is, or when closed)."""
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.retry_at - self._clock())

    def success(self) -> bool:
        """Record a success; True when it closed the circuit (a probe succeeded).

        While open, a success is a late answer to a call made before the circuit
        opened: it proves nothing and changes nothing.
        """
        if self.state == OPEN:
            return False
        self.failures = 0
        if self.state == CLOSED:
            return False
        self._set(CLOSED)
        self.cooldown = self.base_cooldown
        self.ever_closed = True
        return True

    def failure(self) -> bool:
        """Record a failure; True when it opened the circuit."""
        self.failures += 1
        if self.state == CLOSED:
            if self.failures >= self.threshold:
                self._open(self.base_cooldown)
                self.trips += 1
                return True
            return False
        if self.state == HALF_OPEN:  # the probe failed: wait longer
            self._open(min(self.cooldown * 2, self.max_cooldown))
        return False

    def trip(self) -> bool:
        """Open at once whatever the count (the connection is known to be lost)."""
        self.failures += 1
        if self.state == CLOSED:
            self._open(self.base_cooldown)
            self.trips += 1
            return True
        if self.state == HALF_OPEN:
            self._open(min(self.cooldown * 2, self.max_cooldown))
        return False

    def try_probe(self) -> bool:
        """Move from open to half-open when the cooldown is over; True when the caller probes."""
        if self.state != OPEN or self._clock() < self.retry_at:
            return False
        self._set(HALF_OPEN)
        return True

    def _open(self, cooldown: float) -> None:
        self._set(OPEN)
        self.cooldown = cooldown
        self.retry_at = self.changed_at + cooldown

    def _set(self, state: str) -> None:
        self.state = state
        self.changed_at = self._clock()

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.state} failures={self.failures} cooldown={self.cooldown:g}>"


__all__ = ["BREAKER_STATES", "CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker"]
