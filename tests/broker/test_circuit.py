"""The circuit breaker's state machine, on a hand-driven clock."""

from __future__ import annotations

import pytest

from fastws.hub.broker.circuit import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from tests.support.brokers import Clock


def closed_breaker(**options) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    options.setdefault("threshold", 3)
    options.setdefault("cooldown", 1.0)
    options.setdefault("max_cooldown", 8.0)
    return CircuitBreaker(clock=clock, closed=True, **options), clock


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker, _ = closed_breaker()
    assert breaker.state == CLOSED and breaker.allows
    assert breaker.failure() is False and breaker.failure() is False
    assert breaker.state == CLOSED and breaker.failures == 2
    assert breaker.failure() is True  # the third in a row
    assert breaker.state == OPEN and not breaker.allows
    assert breaker.trips == 1
    assert breaker.failure() is False  # already open: counted, no second trip
    assert breaker.trips == 1 and breaker.failures == 4


def test_a_success_resets_the_count() -> None:
    breaker, _ = closed_breaker()
    breaker.failure()
    breaker.failure()
    assert breaker.success() is False  # closed stays closed
    assert breaker.failures == 0
    breaker.failure()
    breaker.failure()
    assert breaker.state == CLOSED


def test_a_late_success_does_not_close_an_open_circuit() -> None:
    breaker, clock = closed_breaker(threshold=1)
    breaker.failure()
    assert breaker.success() is False  # a call made before the circuit opened
    assert breaker.state == OPEN and breaker.failures == 1
    clock.now += 1
    assert breaker.try_probe() and breaker.success() is True


def test_no_probe_before_the_cooldown_then_half_open() -> None:
    breaker, clock = closed_breaker(threshold=1)
    breaker.failure()
    assert breaker.retry_in() == pytest.approx(1.0)
    assert breaker.try_probe() is False and breaker.state == OPEN
    clock.now += 0.5
    assert breaker.retry_in() == pytest.approx(0.5)
    assert breaker.try_probe() is False
    clock.now += 0.5
    assert breaker.retry_in() == 0.0
    assert breaker.try_probe() is True
    assert breaker.state == HALF_OPEN and not breaker.allows  # only the probe runs
    assert breaker.try_probe() is False  # one probe at a time


def test_a_successful_probe_closes_and_resets_the_cooldown() -> None:
    breaker, clock = closed_breaker(threshold=1)
    breaker.failure()
    clock.now += 1
    breaker.try_probe()
    breaker.failure()  # the probe failed: open for twice as long
    assert breaker.state == OPEN and breaker.cooldown == 2.0
    clock.now += 2
    assert breaker.try_probe()
    assert breaker.success() is True
    assert breaker.state == CLOSED and breaker.allows
    assert breaker.cooldown == 1.0 and breaker.failures == 0
    breaker.failure()
    assert breaker.retry_in() == pytest.approx(1.0)  # the next outage starts short again


def test_failed_probes_back_off_exponentially_up_to_the_cap() -> None:
    breaker, clock = closed_breaker(threshold=1, cooldown=1.0, max_cooldown=8.0)
    breaker.failure()
    waits = []
    for _ in range(6):
        waits.append(breaker.retry_in())
        clock.now += breaker.retry_in()
        assert breaker.try_probe()
        breaker.failure()
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert breaker.trips == 1  # one outage, however many probes


def test_trip_opens_at_once_whatever_the_count() -> None:
    breaker, clock = closed_breaker(threshold=5)
    assert breaker.trip() is True
    assert breaker.state == OPEN and breaker.trips == 1
    clock.now += 1
    breaker.try_probe()
    assert breaker.trip() is False  # a lost probe connection: open, longer wait
    assert breaker.state == OPEN and breaker.cooldown == 2.0


def test_a_new_breaker_is_starting_and_may_probe_at_once() -> None:
    breaker = CircuitBreaker(clock=Clock())
    assert breaker.state == OPEN and not breaker.ever_closed
    assert breaker.retry_in() == 0.0
    assert breaker.try_probe() is True
    breaker.failure()
    assert breaker.state == OPEN and not breaker.ever_closed and breaker.trips == 0
    breaker._clock.now += breaker.retry_in()
    assert breaker.try_probe()
    breaker.success()
    assert breaker.ever_closed and breaker.state == CLOSED


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown=2, max_cooldown=1)
