"""The Redis broker on a master that Sentinel watches: hub nodes follow a failover."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker.test_redis_cluster_mode import FAST_RETRY, Watcher, under_load
from tests.support.hubprocess import hub_nodes
from tests.support.loops import run_async
from tests.support.redis_cluster import DOWN_AFTER_MS, LocalSentinels


@pytest.fixture
def sentinels() -> Iterator[LocalSentinels]:
    made = LocalSentinels()
    try:
        yield made.start()
    finally:
        made.cleanup()


@run_async(loops=("uvloop",), timeout=180)
async def test_the_master_killed_under_load(sentinels: LocalSentinels) -> None:
    """The sentinels promote the replica; the hub nodes find it and carry on, their
    subscribers told of the new stream (the failover may have lost the last writes)."""
    channel = "stream:sentinel"
    async with hub_nodes(sentinels.url(), 2, *FAST_RETRY) as (a, b):
        status = await a.broker_status()
        assert status["shards"][0]["address"] == f"fastws (127.0.0.1:{sentinels.master.port})"
        watchers = [await Watcher(node, channel).start() for node in (a, b)]
        acks, outage = await under_load(
            a, channel, watchers, sentinels.master.kill, lambda: all(w.resyncs for w in watchers)
        )
        print(f"publications failed for {outage:.2f} s after the master was killed")
        assert sentinels.current_master_port() == sentinels.replica.port
        for watcher in watchers:
            watcher.check(acks)
            assert watcher.resyncs == [False]
            await watcher.close()
        status = await a.broker_status()
        assert status["shards"][0]["address"] == f"fastws (127.0.0.1:{sentinels.replica.port})"
        # The outage: the sentinels' down-after time, their election, then a probe.
        assert any(status == 503 for _, (status, _) in acks)
        assert outage < 10 * DOWN_AFTER_MS / 1000
