"""/metrics across workers and JSON log lines, on a real master with two workers."""

from __future__ import annotations

import asyncio
import signal

import fastws
from fastws.errors import HandshakeError
from fastws.hub import Client
from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess, dev_token
from tests.support.loops import run_async
from tests.support.ops import json_lines, metric

CHANNEL = "chat:metrics"


@run_async(loops=("uvloop",), timeout=90)
async def test_one_metrics_view_across_workers_survives_a_reload() -> None:
    args = ("--workers", "2", "--log-format", "json", "--drain-window", "0.5")
    async with HubProcess(*args) as hub:
        clients = []
        for i in range(6):
            client = Client(hub.url(), token=await dev_token(hub.port, f"m{i}"), backoff_base=0.1)
            await client.connect()
            await client.subscribe(CHANNEL)
            clients.append(client)
        try:
            for i in range(3):
                await clients[i].publish(CHANNEL, {"i": i})
            await clients[0].send("m1", "hello")
            # Refusals: no WebSocket at /nope, and a token that is not one.
            try:
                await fastws.connect(f"ws://127.0.0.1:{hub.port}/nope")
            except HandshakeError:
                pass
            else:
                raise AssertionError("a WebSocket at /nope")
            bad = await HubClient.open(hub.port, connect=False)
            code, _ = await bad.error("connect", {"token": "not-a-token"})
            assert code == 401
            await bad.closed()
            await asyncio.sleep(0.2)  # deliveries reach the workers' counters
            samples = await hub.metrics()
        finally:
            await asyncio.gather(*(c.close() for c in clients))

        connections = metric(samples, "fastws_connections", worker="0") + metric(
            samples, "fastws_connections", worker="1"
        )
        assert connections == 6
        assert metric(samples, "fastws_connections_total") >= 7
        assert metric(samples, "fastws_handshakes_failed_total", reason="not_found") == 1
        assert metric(samples, "fastws_handshakes_failed_total", reason="invalid_token") == 1
        assert metric(samples, "fastws_messages_received_total", type="publish") == 3
        assert metric(samples, "fastws_received_bytes_total", type="publish") > 0
        assert metric(samples, "fastws_messages_received_total", type="subscribe") == 6
        assert metric(samples, "fastws_publications_total") == 3
        assert metric(samples, "fastws_deliveries_total") == 18
        assert metric(samples, "fastws_messages_sent_total", type="pub") == 18
        assert metric(samples, "fastws_messages_sent_total", type="message") == 1
        assert metric(samples, "fastws_sent_bytes_total", type="reply") > 0
        assert metric(samples, "fastws_command_duration_seconds_count", method="publish") == 3
        assert metric(samples, "fastws_broker_publish_duration_seconds_count") == 3
        assert metric(samples, "fastws_disconnects_total", code="4500") == 1
        for worker in ("0", "1", "master"):
            assert ("fastws_event_loop_lag_seconds", (("worker", worker),)) in samples
            assert metric(samples, "fastws_broker_up", worker=worker) == 1
        assert metric(samples, "fastws_history_publications", worker="master") == 3
        assert metric(samples, "fastws_presence_entries", worker="master") == 6
        assert metric(samples, "fastws_workers", state="serving") == 2
        for name in ("fastws_buffer_pool_hits_total", "fastws_buffer_pool_misses_total"):
            assert (name, ()) in samples  # partial frames only: often 0 with small commands
        assert ("fastws_slow_consumer_disconnects_total", ()) in samples

        # Counters of workers that exit with a reload stay in the totals.
        hub.send(signal.SIGHUP)
        await hub.wait_log("reload done")
        await hub.wait_log("drained", count=2)
        await asyncio.sleep(0.5)
        after = await hub.metrics()
        assert metric(after, "fastws_publications_total") == 3
        assert metric(after, "fastws_connections_total") >= 7
        assert metric(after, "fastws_reloads_total", outcome="ok") == 1
        assert metric(after, "fastws_presence_entries", worker="master") == 0
        assert await hub.stop() == 0
        log = hub.log()

    lines = [line for line in log.splitlines() if line.strip()]
    entries = json_lines(log)
    assert len(entries) == len(lines) > 10  # every line is one JSON object
    assert {e["role"] for e in entries} >= {"master", "worker 0", "worker 1"}
    disconnects = [e for e in entries if e["message"].startswith("fastws hub: disconnect")]
    by_user = {e.get("user"): e for e in disconnects}
    for i in range(6):
        entry = by_user[f"m{i}"]
        assert entry["conn"] and entry["code"] == 1000 and entry["reason"] == "client closed"
        assert entry["peer"].startswith("127.0.0.1:")
    refused = [e for e in disconnects if e["code"] == 4500]
    assert len(refused) == 1 and refused[0]["reason"]
    assert refused[0]["conn"] is None and refused[0]["user"] is None and refused[0]["peer"]
