"""Metrics: plain counters on the hot path, Prometheus text on scrape.

Sessions and the node count in plain ints and dicts (``HubStats``); nothing
calls prometheus_client per message. A scrape takes a *snapshot* of a process
(a list of samples that msgpack can carry), snapshots of several processes are
*merged* by adding samples with the same name and labels, and the merged view
is *rendered* through a prometheus_client collector. With several workers the
master gathers one snapshot per worker, adds what it keeps for workers that
exited (so counters never go down across a reload) and its own samples (the
shared in-memory broker), and hands the text to the worker that was scraped.

Counters and histograms carry no worker label: they add up across workers.
Gauges that only mean something per process (loop lag, broker up, open
connections) carry ``worker`` (the worker's slot, stable across reloads, or
``master``).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

import fastws
from fastws.buffers import default_pool
from fastws.hub.broker.base import Broker
from fastws.hub.broker.circuit import BREAKER_STATES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5,
)  # fmt: skip
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# name -> (type, help, label names, histogram buckets)
METRICS: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...]]] = {
    "fastws_info": (GAUGE, "fastws version serving", ("version",), ()),
    "fastws_workers": (GAUGE, "worker processes running (supervised mode)", ("state",), ()),
    "fastws_worker_restarts_total": (COUNTER, "workers restarted after an unexpected exit", (), ()),
    "fastws_reloads_total": (COUNTER, "reloads (SIGHUP) by outcome", ("outcome",), ()),
    "fastws_connections": (GAUGE, "open WebSocket connections", ("worker",), ()),
    "fastws_connections_total": (COUNTER, "WebSocket connections opened", (), ()),
    "fastws_handshakes_failed_total": (
        COUNTER,
        "connections refused before they could use the hub, by reason",
        ("reason",),
        (),
    ),
    "fastws_disconnects_total": (COUNTER, "WebSocket connections closed, by close code", ("code",), ()),
    "fastws_slow_consumer_disconnects_total": (
        COUNTER,
        "clients dropped because their send buffer passed max_send_buffer",
        (),
        (),
    ),
    "fastws_messages_received_total": (COUNTER, "commands received, by method", ("type",), ()),
    "fastws_received_bytes_total": (COUNTER, "bytes of commands received, by method", ("type",), ()),
    "fastws_messages_sent_total": (COUNTER, "replies and pushes sent, by type", ("type",), ()),
    "fastws_sent_bytes_total": (COUNTER, "bytes of replies and pushes sent, by type", ("type",), ()),
    "fastws_publications_total": (COUNTER, "publications accepted (commands and HTTP API)", (), ()),
    "fastws_deliveries_total": (COUNTER, "publications pushed to subscribers", (), ()),
    "fastws_command_duration_seconds": (
        HISTOGRAM,
        "time from a command's arrival to its reply, by method",
        ("method",),
        LATENCY_BUCKETS,
    ),
    "fastws_event_loop_lag_seconds": (
        GAUGE,
        "largest event loop delay seen over the last 10 seconds",
        ("worker",),
        (),
    ),
    "fastws_event_loop_delay_seconds": (
        HISTOGRAM,
        "event loop delays, measured every half second",
        (),
        LAG_BUCKETS,
    ),
    "fastws_channels": (GAUGE, "channels with subscribers in this process", ("worker",), ()),
    "fastws_broker_up": (GAUGE, "1 when the broker is usable", ("worker",), ()),
    "fastws_broker_publish_duration_seconds": (
        HISTOGRAM,
        "time the broker takes to accept a publication",
        (),
        LATENCY_BUCKETS,
    ),
    "fastws_broker_breaker_state": (
        GAUGE,
        "circuit breaker state of the broker (1 for the current state)",
        ("worker", "shard", "state"),
        (),
    ),
    "fastws_broker_breaker_trips_total": (COUNTER, "times a broker circuit opened", (), ()),
    "fastws_broker_overloaded_total": (
        COUNTER,
        "broker calls turned away by a full queue (503; the circuit stays closed)",
        (),
        (),
    ),
    "fastws_history_streams": (GAUGE, "channels with a stream position (memory broker)", ("worker",), ()),
    "fastws_history_publications": (GAUGE, "publications held in history (memory broker)", ("worker",), ()),
    "fastws_presence_entries": (GAUGE, "presence entries (memory broker)", ("worker",), ()),
    "fastws_buffer_pool_hits_total": (COUNTER, "buffers reused from the pool", (), ()),
    "fastws_buffer_pool_misses_total": (COUNTER, "buffers the pool had to allocate", (), ()),
    "fastws_buffer_pool_free_bytes": (GAUGE, "bytes of buffers kept free in the pool", ("worker",), ()),
}

HANDSHAKE_REASONS = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    408: "timeout",
    413: "too_large",
    426: "upgrade_required",
    500: "internal",
    503: "too_many_connections",
}

Sample = list  # [name, labels (flat list k1, v1, ...), value]; histograms: value = [counts, sum]


class Histogram:
    """Bucket counts in a list: ``observe`` is a bisect and two additions."""

    __slots__ = ("buckets", "counts", "sum")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def value(self) -> list:
        return [list(self.counts), self.sum]


class HubStats:
    """What a hub process counts as it runs; read only by ``hub_samples``."""

    def __init__(self) -> None:
        self.connections_total = 0
        self.handshake_failures: dict[str, int] = {}
        self.disconnects: dict[int, int] = {}
        self.slow_consumers = 0
        self.messages_in: dict[str, int] = {}
        self.bytes_in: dict[str, int] = {}
        self.messages_out: dict[str, int] = {}
        self.bytes_out: dict[str, int] = {}
        self.publications = 0
        self.deliveries = 0
        self.commands: dict[str, Histogram] = {}
        self.publish_latency = Histogram(LATENCY_BUCKETS)

    def sent(self, kind: str, count: int, nbytes: int) -> None:
        self.messages_out[kind] = self.messages_out.get(kind, 0) + count
        self.bytes_out[kind] = self.bytes_out.get(kind, 0) + nbytes

    def failed_handshake(self, reason: str) -> None:
        self.handshake_failures[reason] = self.handshake_failures.get(reason, 0) + 1

    def command_done(self, method: str, seconds: float) -> None:
        histogram = self.commands.get(method)
        if histogram is None:
            histogram = self.commands[method] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)


class LoopLag:
    """Measures how late a half-second timer fires: the event loop's delay."""

    INTERVAL = 0.5
    WINDOW = 10.0

    def __init__(self) -> None:
        self.histogram = Histogram(LAG_BUCKETS)
        self._current = 0.0  # max over the running window
        self._previous = 0.0  # max over the window before
        self._window_start = 0.0
        self._expected = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._window_start = self._loop.time()
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        self._expected = self._loop.time() + self.INTERVAL
        self._timer = self._loop.call_at(self._expected, self._tick)

    def _tick(self) -> None:
        now = self._loop.time()
        lag = max(0.0, now - self._expected)
        self.histogram.observe(lag)
        if now - self._window_start >= self.WINDOW:
            self._previous, self._current = self._current, 0.0
            self._window_start = now
        self._current = max(self._current, lag)
        self._schedule()

    @property
    def recent_max(self) -> float:
        return max(self._current, self._previous)


# -- snapshots ---------------------------------------------------------------------


def _add(samples: list, name: str, labels: tuple = (), value: Any = 0) -> None:
    samples.append([name, list(labels), value])


def broker_samples(broker: Broker, worker: str) -> list[Sample]:
    """Health, circuit breakers and (when held in this process) sizes of one broker."""
    samples: list[Sample] = []
    _add(samples, "fastws_broker_up", ("worker", worker), int(broker.healthy))
    trips = 0
    for shard, breaker in enumerate(broker.breakers()):
        for state in BREAKER_STATES:
            value = int(breaker.state == state)
            labels = ("worker", worker, "shard", str(shard), "state", state)
            _add(samples, "fastws_broker_breaker_state", labels, value)
        trips += breaker.trips
    if trips:
        _add(samples, "fastws_broker_breaker_trips_total", (), trips)
    if broker.overloaded:
        _add(samples, "fastws_broker_overloaded_total", (), broker.overloaded)
    sizes = broker.sizes()
    if sizes is not None:
        _add(samples, "fastws_history_streams", ("worker", worker), sizes.streams)
        _add(samples, "fastws_history_publications", ("worker", worker), sizes.publications)
        _add(samples, "fastws_presence_entries", ("worker", worker), sizes.presence)
    return samples


def process_samples(worker: str, lag: LoopLag | None) -> list[Sample]:
    """What every process reports: buffer pool and event loop lag."""
    samples: list[Sample] = []
    pool = default_pool
    _add(samples, "fastws_buffer_pool_hits_total", (), pool.hits)
    _add(samples, "fastws_buffer_pool_misses_total", (), pool.misses)
    _add(samples, "fastws_buffer_pool_free_bytes", ("worker", worker), pool.free_bytes)
    if lag is not None:
        _add(samples, "fastws_event_loop_lag_seconds", ("worker", worker), lag.recent_max)
        _add(samples, "fastws_event_loop_delay_seconds", (), lag.histogram.value())
    return samples


def hub_samples(hub: Any, worker: str, lag: LoopLag | None = None) -> list[Sample]:
    """A snapshot of one hub process (``hub`` is a ``fastws.hub.app.Hub``)."""
    node = hub.node
    stats: HubStats = node.stats
    samples = process_samples(worker, lag)
    _add(samples, "fastws_connections", ("worker", worker), len(node.sessions) + len(node.waiting))
    _add(samples, "fastws_connections_total", (), stats.connections_total)
    _add(samples, "fastws_channels", ("worker", worker), len(node.channels))
    failures = dict(stats.handshake_failures)
    server = hub.server
    if server is not None:
        for status, count in getattr(server, "handshake_failures", {}).items():
            reason = HANDSHAKE_REASONS.get(status, str(status))
            failures[reason] = failures.get(reason, 0) + count
    for reason, count in failures.items():
        _add(samples, "fastws_handshakes_failed_total", ("reason", reason), count)
    for code, count in stats.disconnects.items():
        _add(samples, "fastws_disconnects_total", ("code", str(code)), count)
    _add(samples, "fastws_slow_consumer_disconnects_total", (), stats.slow_consumers)
    for kind, count in stats.messages_in.items():
        _add(samples, "fastws_messages_received_total", ("type", kind), count)
    for kind, count in stats.bytes_in.items():
        _add(samples, "fastws_received_bytes_total", ("type", kind), count)
    for kind, count in stats.messages_out.items():
        _add(samples, "fastws_messages_sent_total", ("type", kind), count)
    for kind, count in stats.bytes_out.items():
        _add(samples, "fastws_sent_bytes_total", ("type", kind), count)
    _add(samples, "fastws_publications_total", (), stats.publications)
    _add(samples, "fastws_deliveries_total", (), stats.deliveries)
    for method, histogram in stats.commands.items():
        _add(samples, "fastws_command_duration_seconds", ("method", method), histogram.value())
    _add(samples, "fastws_broker_publish_duration_seconds", (), stats.publish_latency.value())
    samples += broker_samples(node.broker, worker)
    return samples


# -- merging and rendering -------------------------------------------------------------


def _key(sample: Sample) -> tuple:
    return sample[0], tuple(sample[1])


def merge(snapshots: Iterable[list[Sample]]) -> dict[tuple, Any]:
    """Samples of several processes: same name and labels add up."""
    merged: dict[tuple, Any] = {}
    for samples in snapshots:
        for sample in samples:
            key = _key(sample)
            value = sample[2]
            old = merged.get(key)
            if old is None:
                merged[key] = [list(value[0]), value[1]] if isinstance(value, list) else value
            elif isinstance(old, list):
                counts = old[0]
                for i, count in enumerate(value[0]):
                    counts[i] += count
                old[1] += value[1]
            else:
                merged[key] = old + value
    return merged


def cumulative(merged: dict[tuple, Any]) -> list[Sample]:
    """The counters and histograms of a merged view (what outlives a worker)."""
    return [
        [name, list(labels), value]
        for (name, labels), value in merged.items()
        if METRICS.get(name, (GAUGE,))[0] != GAUGE
    ]


class _Collector:
    def __init__(self, merged: dict[tuple, Any]) -> None:
        self.merged = merged

    def collect(self) -> Iterable[Any]:
        by_name: dict[str, list[tuple[tuple, Any]]] = {}
        for (name, labels), value in self.merged.items():
            by_name.setdefault(name, []).append((labels, value))
        by_name.setdefault("fastws_info", []).append((("version", fastws.__version__), 1))
        for name in sorted(by_name):
            kind, text, label_names, buckets = METRICS.get(name, (GAUGE, name, (), ()))
            items = by_name[name]
            if kind == COUNTER:
                family: Any = CounterMetricFamily(name, text, labels=label_names)
            elif kind == GAUGE:
                family = GaugeMetricFamily(name, text, labels=label_names)
            else:
                family = HistogramMetricFamily(name, text, labels=label_names)
            for labels, value in items:
                label_map = dict(zip(labels[::2], labels[1::2], strict=True))
                values = [label_map.get(label, "") for label in label_names]
                if kind == HISTOGRAM:
                    counts, total = value
                    running = 0
                    pairs = []
                    for bound, count in zip((*buckets, float("inf")), counts, strict=False):
                        running += count
                        pairs.append(("+Inf" if bound == float("inf") else repr(bound), running))
                    family.add_metric(values, pairs, total)
                else:
                    family.add_metric(values, value)
            yield family


def render(merged: dict[tuple, Any]) -> bytes:
    """The Prometheus text exposition of a merged view."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(merged))
    return generate_latest(registry)


__all__ = [
    "CONTENT_TYPE",
    "Histogram",
    "HubStats",
    "LoopLag",
    "broker_samples",
    "cumulative",
    "hub_samples",
    "merge",
    "process_samples",
    "render",
]
