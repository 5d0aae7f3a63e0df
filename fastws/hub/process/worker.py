"""One worker process of a supervised hub (``python -m fastws --workers N``).

The master starts ``python -m fastws.hub.process.worker`` with inherited descriptors
named in ``FASTWS_WORKER_FDS`` (``listen,control[,broker]``):

- ``listen``: the listening socket the master bound; every worker accepts on
  it, and it stays open in the master while workers come and go;
- ``control``: a socket pair end to the master (msgpack messages, see below);
- ``broker``: with ``memory://``, the link to the memory broker that the
  master keeps for all workers (``broker/local.py``); with Redis the worker
  connects to Redis itself and there is no such link.

With ``internal_port``, ``FASTWS_WORKER_INTERNAL_FD`` names the internal port's
listening socket, which the workers share the same way.

Control messages (msgpack maps, key ``t`` names the kind):

    master -> worker  config {config, slot, dev_secret}   first, exactly once
                      drain {window}      stop accepting, let clients go (1012)
                      stop {}             shut down now (1001)
                      snapshot {id}       send your metrics samples
                      metrics {id, text}  the answer to a scrape this worker asked for
    worker -> master  ready {node, pid} | failed {error}
                      snapshot {id, samples} | final {samples}
                      scrape {id}         a client asked this worker for /metrics

A worker whose master disappears (control link closed) drains like on a
reload and exits: it is not left serving alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import signal
import socket
import sys
from typing import Any

from fastws.hub.broker import create_broker
from fastws.hub.config import ConfigError, HubConfig
from fastws.hub.ipc import MessageStream, PendingRequests
from fastws.hub.logs import setup_logging
from fastws.hub.metrics import hub_samples
from fastws.hub.namespaces import Namespace
from fastws.hub.protocol import codes

logger = logging.getLogger("fastws.hub")

FDS_VARIABLE = "FASTWS_WORKER_FDS"
INTERNAL_FD_VARIABLE = "FASTWS_WORKER_INTERNAL_FD"
SCRAPE_TIMEOUT = 5.0


def config_to_dict(config: HubConfig) -> dict[str, Any]:
    """The options of ``config`` as plain values (what the master sends a worker)."""
    return dataclasses.asdict(config)


def config_from_dict(values: dict[str, Any]) -> HubConfig:
    """A validated HubConfig from ``config_to_dict`` output; unknown keys are dropped
    (a newer worker may no longer know an option an older master still sends)."""
    known = {f.name for f in dataclasses.fields(HubConfig)}
    values = {k: v for k, v in values.items() if k in known}
    if "namespaces" in values:
        values["namespaces"] = [Namespace(**n) for n in values["namespaces"]]
    return HubConfig(**values).validate()


def spread_disconnects(
    sessions: list[Any], window: float, disconnect: codes.Disconnect
) -> list[asyncio.TimerHandle]:
    """Disconnect each session at its own moment of ``window``: slot i of n, plus jitter,
    so that the clients' reconnects do not reach the other workers as one burst."""
    loop = asyncio.get_running_loop()
    random.shuffle(sessions)
    count = len(sessions)
    handles = []
    for i, session in enumerate(sessions):
        delay = (i + random.random()) * window / count if window > 0 else 0.0
        handles.append(loop.call_later(delay, session.disconnect, disconnect))
    return handles


class Worker:
    """The hub of this process, steered by the master over the control link."""

    def __init__(
        self,
        listen_fd: int,
        control_fd: int,
        broker_fd: int | None,
        internal_fd: int | None = None,
    ) -> None:
        self.listen_fd = listen_fd
        self.internal_fd = internal_fd
        self.control_sock = socket.socket(fileno=control_fd)
        self.broker_sock = socket.socket(fileno=broker_fd) if broker_fd is not None else None
        self.control: MessageStream | None = None
        self.hub: Any = None
        self.slot = "?"
        self._first: asyncio.Future | None = None
        self._order: asyncio.Future | None = None  # ("drain", window) | ("stop", None)
        self._scrapes = PendingRequests()

    # -- the control link ----------------------------------------------------------------

    def _on_control(self, message: dict) -> None:
        kind = message.get("t")
        if kind == "config":
            if not self._first.done():
                self._first.set_result(message)
        elif kind == "drain":
            self._give_order(("drain", float(message.get("window", 0.0))))
        elif kind == "stop":
            self._give_order(("stop", None))
        elif kind == "snapshot":
            samples = self._samples()
            self.control.send({"t": "snapshot", "id": message["id"], "samples": samples})
        elif kind == "metrics":
            self._scrapes.resolve(message["id"], message["text"])

    def _on_control_lost(self, exc: Exception | None) -> None:
        if self._first is not None and not self._first.done():
            self._first.set_exception(ConnectionError("the master closed the control link"))
        self._scrapes.fail_all(ConnectionError("the master is gone"))
        if self._order is not None and not self._order.done():
            logger.warning("fastws hub: the master is gone; letting clients go and exiting")
        self._give_order(("drain", self._drain_window()))

    def _drain_window(self) -> float:
        hub = self.hub
        return hub.config.drain_window if hub is not None else 0.0

    def _give_order(self, order: tuple[str, Any]) -> None:
        if self._order is not None and not self._order.done():
            self._order.set_result(order)

    def _samples(self) -> list:
        hub = self.hub
        if hub is None or hub.server is None:
            return []
        return hub_samples(hub, self.slot, hub.lag)

    async def _scrape(self) -> bytes:
        """/metrics of the whole hub, gathered by the master."""
        if self.control is None or self.control.closed:
            return self.hub.local_metrics()
        scrape_id, future = self._scrapes.new()
        self.control.send({"t": "scrape", "id": scrape_id})
        try:
            return await asyncio.wait_for(future, SCRAPE_TIMEOUT)
        except (TimeoutError, ConnectionError):
            self._scrapes.forget(scrape_id)
            return self.hub.local_metrics()

    # -- life cycle ------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        self._order = loop.create_future()
        self.control = await MessageStream.open(
            self.control_sock, self._on_control, self._on_control_lost
        )
        try:
            first = await self._first
        except ConnectionError:
            return 1
        self.slot = str(first.get("slot", "?"))
        try:
            config = config_from_dict(first["config"])
        except (ConfigError, TypeError) as exc:
            self.control.send({"t": "failed", "error": str(exc)})
            await self.control.close()
            return 2
        setup_logging(config.log_level, config.log_format, role=f"worker {self.slot}")
        loop.add_signal_handler(signal.SIGTERM, self._give_order, ("stop", None))
        try:
            hub = await self._start(config, first.get("dev_secret"))
        except (ConfigError, OSError) as exc:
            self.control.send({"t": "failed", "error": str(exc)})
            await self.control.close()
            return 2
        self.control.send({"t": "ready", "node": hub.node.id, "pid": os.getpid()})
        kind, window = await self._order
        if kind == "drain":
            await self.drain(window)
        else:
            logger.info("fastws hub: shutting down")
            await hub.close(codes.GOING_AWAY)
        if not self.control.closed:
            self.control.send({"t": "final", "samples": self._samples()})
            await self.control.close()
        return 0

    async def _start(self, config: HubConfig, dev_secret: str | None) -> Any:
        from fastws.hub.app import Hub

        broker = create_broker(
            config,
            "worker",
            master_link=self.broker_sock,
            on_master_lost=lambda: self._give_order(("drain", config.drain_window)),
        )
        sock = socket.socket(fileno=self.listen_fd)
        internal = None
        if self.internal_fd is not None and config.internal_port is not None:
            internal = socket.socket(fileno=self.internal_fd)
        hub = Hub(config, broker, sock=sock, internal_sock=internal)
        hub.worker = self.slot
        hub.metrics_source = self._scrape
        if dev_secret:
            hub.auth.use_dev_secret(dev_secret)
        self.hub = hub
        try:
            await hub.start()
        except BaseException:
            self.hub = None
            raise
        logger.info("fastws hub: worker %s ready (node %s)", self.slot, hub.node.id)
        return hub

    async def drain(self, window: float) -> None:
        """Stop accepting, disconnect every client (1012, reconnect) spread over
        ``window`` seconds, then close what is left."""
        hub = self.hub
        hub.server.stop_accepting()
        node = hub.node
        sessions = list(node.sessions.values()) + list(node.waiting)
        logger.info(
            "fastws hub: worker %s draining %d connections over %g s",
            self.slot,
            len(sessions),
            window,
        )
        handles = spread_disconnects(sessions, window, codes.SERVICE_RESTART)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window
        while hub.server.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for handle in handles:
            handle.cancel()
        await hub.close(codes.SERVICE_RESTART)
        logger.info("fastws hub: worker %s drained", self.slot)


def main() -> None:
    fds = os.environ.pop(FDS_VARIABLE, "")
    parts = [int(part) for part in fds.split(",") if part]
    if len(parts) not in (2, 3):
        sys.exit(f"{FDS_VARIABLE} must be 'listen,control[,broker]'; this module is started "
                 "by python -m fastws --workers N")
    # Terminal signals reach the whole process group; the master decides for its workers.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    setup_logging("info", "plain", role="worker")
    internal = os.environ.pop(INTERNAL_FD_VARIABLE, "")
    worker = Worker(
        parts[0],
        parts[1],
        parts[2] if len(parts) == 3 else None,
        int(internal) if internal else None,
    )
    with contextlib.suppress(ImportError):  # plain asyncio works too, only slower
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    sys.exit(asyncio.run(worker.run()))


if __name__ == "__main__":
    main()
