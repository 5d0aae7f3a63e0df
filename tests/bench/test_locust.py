"""bench/locustfile.py drives a real echo server and a real hub headless without a single failure."""

from __future__ import annotations

import csv
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.hubprocess import HubProcess
from tests.support.paths import ROOT


@pytest.fixture
def echo_url(tmp_path: Path):
    """``python -m fastws echo`` on a free port; yields its ws:// URL."""
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "fastws", "echo", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            if not select.select([server.stdout], [], [], deadline - time.monotonic())[0]:
                break
            line = server.stdout.readline()
            if not line:
                break
            found = re.search(r"ws://[\d.]+:\d+", line)
            url = found.group(0) if found else None
        assert url, f"the echo server did not report its address: {(tmp_path / 'server.log').read_text()}"
        yield url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        server.stdout.close()
        log.close()


def run_locust(user_class: str, host: str, prefix: Path) -> dict[str, dict[str, str]]:
    """10 users for 10 s, headless; the rows of locust's stats CSV by request name."""
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), user_class,
         "--headless", "-u", "10", "-r", "10", "-t", "10s", "--host", host, "--only-summary",
         "--csv", str(prefix)],
        cwd=prefix.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with Path(f"{prefix}_stats.csv").open(newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def test_locust_headless_echo_run_has_requests_and_no_failures(echo_url: str, tmp_path: Path):
    stats = run_locust("EchoUser", echo_url, tmp_path / "locust")
    for name in ("connect", "echo text 64B", "echo binary 1KiB", "Aggregated"):
        assert name in stats, f"no {name!r} row in {sorted(stats)}"
    assert all(stats[name]["Type"] == "WS" for name in stats if name != "Aggregated")
    assert int(stats["connect"]["Request Count"]) == 10
    assert int(stats["Aggregated"]["Request Count"]) > 10
    assert int(stats["Aggregated"]["Failure Count"]) == 0


def test_locust_headless_hub_run_gets_its_publications_back_without_failures(tmp_path: Path):
    with HubProcess() as hub:
        stats = run_locust("HubUser", f"ws://127.0.0.1:{hub.port}", tmp_path / "locust")
    for name in ("connect", "connect command", "subscribe", "publish", "publish->pub"):
        assert name in stats, f"no {name!r} row in {sorted(stats)}"
    assert all(stats[name]["Type"] == "WS" for name in stats if name != "Aggregated")
    for name in ("connect", "connect command", "subscribe"):
        assert int(stats[name]["Request Count"]) == 10, name
    assert int(stats["publish->pub"]["Request Count"]) > 0
    assert int(stats["publish"]["Request Count"]) > 0
    assert int(stats["Aggregated"]["Failure Count"]) == 0
