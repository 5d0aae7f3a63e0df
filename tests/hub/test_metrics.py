"""Plain counters, snapshots, merging and the Prometheus text of fastws.hub.metrics."""

from __future__ import annotations

import asyncio

import orjson

from fastws.codec import OP_TEXT, FrameParser, build_frame
from fastws.hub.metrics import (
    LATENCY_BUCKETS,
    Histogram,
    cumulative,
    hub_samples,
    merge,
    render,
)
from tests.support.hub import HubClient, running_hub
from tests.support.loops import run_async
from tests.support.ops import metric, parse_metrics
from tests.support.paths import DOCS


def test_histogram_counts_each_value_in_its_bucket() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(value)
    counts, total = histogram.value()
    assert counts == [2, 1, 1]  # <= 0.1, <= 1.0, +Inf
    assert total == 3.65


def test_merge_adds_counters_and_histograms_and_keeps_labelled_gauges_apart() -> None:
    one = [
        ["fastws_publications_total", [], 3],
        ["fastws_connections", ["worker", "0"], 5],
        ["fastws_broker_publish_duration_seconds", [], [[1, 0, 0], 0.5]],
    ]
    two = [
        ["fastws_publications_total", [], 4],
        ["fastws_connections", ["worker", "1"], 2],
        ["fastws_broker_publish_duration_seconds", [], [[0, 2, 1], 1.5]],
    ]
    merged = merge([one, two])
    assert merged[("fastws_publications_total", ())] == 7
    assert merged[("fastws_connections", ("worker", "0"))] == 5
    assert merged[("fastws_connections", ("worker", "1"))] == 2
    assert merged[("fastws_broker_publish_duration_seconds", ())] == [[1, 2, 1], 2.0]
    assert one[2][2] == [[1, 0, 0], 0.5]  # inputs are not modified
    kept = {name for name, _, _ in cumulative(merged)}
    assert kept == {"fastws_publications_total", "fastws_broker_publish_duration_seconds"}


def test_render_is_prometheus_text_with_cumulative_buckets() -> None:
    counts = [0] * (len(LATENCY_BUCKETS) + 1)
    counts[0], counts[3], counts[-1] = 2, 1, 1
    merged = merge(
        [
            [
                ["fastws_messages_received_total", ["type", "publish"], 9],
                ["fastws_event_loop_lag_seconds", ["worker", "master"], 0.002],
                ["fastws_command_duration_seconds", ["method", "publish"], [counts, 1.25]],
            ]
        ]
    )
    text = render(merged).decode()
    assert "# TYPE fastws_messages_received_total counter" in text
    assert "# TYPE fastws_command_duration_seconds histogram" in text
    samples = parse_metrics(text)
    assert metric(samples, "fastws_messages_received_total", type="publish") == 9
    assert metric(samples, "fastws_event_loop_lag_seconds", worker="master") == 0.002
    assert metric(samples, "fastws_command_duration_seconds_count", method="publish") == 4
    assert metric(samples, "fastws_command_duration_seconds_sum", method="publish") == 1.25
    bound = repr(LATENCY_BUCKETS[3])
    assert metric(samples, "fastws_command_duration_seconds_bucket", method="publish", le=bound) == 3
    assert samples[("fastws_info", (("version", __import__("fastws").__version__),))] == 1


@run_async()
async def test_a_hub_counts_what_it_does_and_drops_slow_consumers_visibly() -> None:
    async with running_hub(
        max_message_size=16384, max_send_buffer=65536, command_rate=1e6, command_burst=100000
    ) as hub:
        client = await HubClient.open(hub.port)
        await client.result("subscribe", {"channel": "plain:m"})
        await client.result("publish", {"channel": "plain:m", "data": 1})
        await client.pushes_of("pub", 1)
        # A subscriber that stops reading once subscribed.
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        writer.write(
            b"GET /connection HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await reader.readuntil(b"\r\n\r\n")
        frames: list = []
        parser = FrameParser(lambda op, fin, rsv1, p: frames.append(op), client=True)
        for command in (
            {"id": 1, "method": "connect"},
            {"id": 2, "method": "subscribe", "params": {"channel": "plain:m"}},
        ):
            writer.write(build_frame(OP_TEXT, orjson.dumps(command), mask=True))
        while len(frames) < 2:
            parser.feed(await reader.read(65536))
        stats = hub.node.stats
        for _ in range(100):
            if stats.slow_consumers:
                break
            sent = [
                client.send_command("publish", {"channel": "plain:m", "data": "y" * 15000})
                for _ in range(20)
            ]
            for command_id in sent:
                await client.reply(command_id)
        assert stats.slow_consumers == 1
        writer.close()
        samples = parse_metrics(hub.local_metrics().decode())
        assert metric(samples, "fastws_slow_consumer_disconnects_total") == 1
        assert metric(samples, "fastws_disconnects_total", code="4008") == 1
        assert metric(samples, "fastws_messages_received_total", type="connect") == 2
        assert metric(samples, "fastws_command_duration_seconds_count", method="subscribe") == 2
        assert metric(samples, "fastws_publications_total") >= 2
        assert metric(samples, "fastws_history_streams", worker="0") >= 1
        assert metric(samples, "fastws_broker_up", worker="0") == 1
        await client.close()
        snapshot = hub_samples(hub, "7", hub.lag)
        assert ["fastws_connections", ["worker", "7"], 0] in snapshot


def test_the_dashboard_and_the_operations_guide_name_only_real_metrics() -> None:
    import re

    from fastws.hub.metrics import METRICS

    dashboard = (DOCS / "grafana-dashboard.json").read_text()
    orjson.loads(dashboard)
    used = {re.sub(r"_(bucket|sum|count)$", "", n) for n in re.findall(r"fastws_[a-z_]+", dashboard)}
    assert used <= set(METRICS), used - set(METRICS)
    guide = (DOCS / "operations.md").read_text()
    assert [name for name in METRICS if f"`{name}`" not in guide] == []
