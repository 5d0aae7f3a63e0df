"""The cluster benchmark's harness: its report, and one tiny run of both systems."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.cluster import ROOT, Step, report
from tests.support.redis import redis_server_binary


def step(system: str, rate: int, delivered: float, p99: float, sustained: bool) -> Step:
    return Step(
        system=system, rate=rate, subscribers=100, offered=rate * 100.0, delivered=delivered,
        p50_ms=1.0, p99_ms=p99, node_b_cpu=0.5, node_a_cpu=0.1, redis_cpu=0.1,
        driver_cpu=0.1, node_b_us_per_delivery=2.0, publish_errors=0, sustained=sustained,
    )


def test_report_compares_at_equal_or_better_p99() -> None:
    steps = [
        step("fastws", 100, 10_000, 5.0, True),
        step("fastws", 1000, 100_000, 20.0, True),
        step("fastws", 2000, 200_000, 90.0, True),  # faster, but worse p99 than the other's
        step("fastws", 4000, 150_000, 900.0, False),
        step("python-socketio", 100, 10_000, 50.0, True),
        step("python-socketio", 200, 12_000, 800.0, False),
    ]
    text = report(steps, "python -m bench.cluster", "test machine")
    assert "| fastws | 1,000 | 100,000 | 100,000 | 1.00 | 20.00 |" in text
    assert "Highest sustained rate: fastws 200,000 deliveries/s" in text
    assert "fastws 100,000 deliveries/s (p99 20.00 ms), **10.0x**" in text
    assert "fastws 200,000/s, python-socketio 12,000/s" in text


def test_a_tiny_run_of_both_systems(tmp_path) -> None:
    redis_server_binary()  # fails with the install command when missing
    import socketio  # noqa: F401 (a dev dependency: missing, the test fails here)

    done = subprocess.run(
        [
            sys.executable, "-m", "bench.cluster", "--subscribers", "6", "--probes", "2",
            "--rates", "20", "--duration", "0.5", "--results", str(tmp_path),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (saved,) = tmp_path.glob("cluster-*.json")
    steps = json.loads(saved.read_text())["steps"]
    assert [s["system"] for s in steps] == ["fastws", "python-socketio"]
    for s in steps:
        assert s["delivered"] > 0 and s["p50_ms"] > 0 and s["publish_errors"] == 0
