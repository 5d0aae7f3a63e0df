"""``python -m bench.fanout`` on a few connections: every round reaches every reader."""

from __future__ import annotations

import argparse

import uvloop

from bench import fanout


def test_every_round_reaches_every_connection() -> None:
    args = argparse.Namespace(clients=50, size=100, rounds=3, warmup=1, pause=0.0)
    result = uvloop.run(fanout.measure(args))  # exits when a round misses a connection
    assert result["clients"] == 50 and result["rounds"] == 3
    assert result["cpu_us_per_delivery"] > 0
