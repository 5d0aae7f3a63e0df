"""``python -m bench.timer_scan`` times the shared timer over the idle connections it opens."""

from __future__ import annotations

import uvloop

from bench import timer_scan


def test_timer_scan_times_a_tick_over_every_idle_connection() -> None:
    seconds = uvloop.run(timer_scan.measure(50, 5))
    assert 0 < seconds < 0.001  # per connection and tick: far under a millisecond
