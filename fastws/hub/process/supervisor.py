"""The supervising master of ``python -m fastws --workers N``.

The master binds the listening socket once and starts N worker processes
(``python -m fastws.hub.process.worker``) that inherit it and accept on it; it serves
no client itself. Why one inherited socket rather than SO_REUSEPORT: with
SO_REUSEPORT each worker owns a listening socket with its own accept queue,
and when a worker closes its socket the connections waiting in that queue are
reset, so every reload would refuse some clients. An inherited socket has one
queue, held open by the master across reloads: a worker that stops accepting
leaves waiting connections to the others.

With ``memory://`` the master also keeps the memory broker for all workers
(``broker/local.py``), so publications, private messages, presence and
history are the same whichever worker a client lands on, and history (with
its epochs) survives a worker reload. With Redis the workers use Redis.

Signals:

- SIGHUP: reload. The configuration is read again (flags, environment, the
  TOML file) and a new generation of workers starts with freshly imported
  code. Once every new worker reports ready, the old ones stop accepting and
  disconnect their clients (``disconnect`` push, reconnect: true, close 1012)
  spread over ``drain_window`` seconds, then exit. If a new worker fails, the
  reload is abandoned and the old generation keeps serving.
- SIGUSR2: upgrade. The master re-executes itself (the fastws installed now)
  with the same options, handing the listening socket over as an inherited
  descriptor named by ``FASTWS_LISTEN_FD`` (and the internal port's by
  ``FASTWS_INTERNAL_LISTEN_FD``); the port is never closed. Secret options
  (``jwt_secret``, ``api_key``, a broker URL with a password) do not go on the
  new command line, where ``ps`` would show them: they pass through an
  inherited pipe named by ``FASTWS_INHERITED_SECRETS_FD``, read once and closed.
  With the memory broker, its whole state (streams, epochs, history,
  presence) goes over too, in an unlinked file named by
  ``FASTWS_INHERITED_BROKER_FD`` (``broker/handover.py``; how no request falls
  between the two masters: ``broker/local.py``), so reconnecting clients
  recover. The old workers lose their master, drain and exit.
- SIGTERM, SIGINT: shut down. Workers stop accepting, send every client a
  ``disconnect`` push (1001, reconnect: true), wait for the close handshakes
  up to ``shutdown_timeout``, flush the broker and exit; then the master exits 0.

A worker that exits on its own is started again after a backoff that doubles
with each quick failure of the same slot (0.1 s up to 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from fastws.hub.broker import create_broker, handover
from fastws.hub.broker.local import BrokerHost
from fastws.hub.config import SECRET_OPTIONS, ConfigError, HubConfig, env_name, redact_url
from fastws.hub.ipc import MessageStream, PendingRequests
from fastws.hub.logs import setup_logging
from fastws.hub.metrics import (
    LoopLag,
    Sample,
    broker_samples,
    cumulative,
    merge,
    process_samples,
    render,
)
from fastws.hub.process.worker import FDS_VARIABLE, INTERNAL_FD_VARIABLE, config_to_dict

logger = logging.getLogger("fastws.hub")

LISTEN_FD_VARIABLE = "FASTWS_LISTEN_FD"
INTERNAL_LISTEN_FD_VARIABLE = "FASTWS_INTERNAL_LISTEN_FD"
INHERITED_VARIABLE = "FASTWS_INHERITED_PIDS"
SECRETS_FD_VARIABLE = "FASTWS_INHERITED_SECRETS_FD"
DEV_SECRET_VARIABLE = "FASTWS_INHERITED_DEV_SECRET"  # dev tokens stay valid across an upgrade
BROKER_FD_VARIABLE = "FASTWS_INHERITED_BROKER_FD"
HANDOVER = (
    LISTEN_FD_VARIABLE,
    INTERNAL_LISTEN_FD_VARIABLE,
    INHERITED_VARIABLE,
    SECRETS_FD_VARIABLE,
    DEV_SECRET_VARIABLE,
    BROKER_FD_VARIABLE,
)
SECRET_VARIABLES = {env_name(name) for name in (*SECRET_OPTIONS, "broker")}
"""Variables that may hold a secret (the broker URL a password), not passed on to workers:
they get their configuration over the control link."""
BACKLOG = 4096
BIND_WAIT = 10.0  # seconds a port still held (by a previous hub dying) is tried again
BIND_RETRY_INTERVAL = 0.5
SNAPSHOT_TIMEOUT = 1.0
STABLE_AFTER = 10.0  # seconds of life after which a worker's exit is not a quick failure
MAX_BACKOFF = 10.0
EXIT_GRACE = 5.0  # seconds past its own deadlines before a worker is killed
FLUSH_TIMEOUT = 2.0  # seconds an upgrade waits for workers to take the broker's last replies


class WorkerFailed(ConfigError):
    """A worker could not start (bad certificate, broker URL...): its own message."""


def bind(host: str, port: int, wait: float = BIND_WAIT) -> socket.socket:
    """The listening socket for ``host``/``port`` (the first address found). A port in
    use is tried again for up to ``wait`` seconds: right after a hub was killed, its
    workers may still hold the listening socket while they die (closing thousands of
    connections takes a while), and a supervisor restarting it at once would fail."""
    deadline = time.monotonic() + wait
    warned = False
    while True:
        try:
            return _bind_once(host, port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise
            if not warned:
                logger.warning(
                    "fastws hub: %s:%s is in use, trying again for up to %g s", host, port, wait
                )
                warned = True
            time.sleep(BIND_RETRY_INTERVAL)


def _bind_once(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def inherited_socket(variable: str = LISTEN_FD_VARIABLE) -> socket.socket | None:
    """A listening socket handed over by the master this process replaced, if any."""
    text = os.environ.pop(variable, None)
    if not text:
        return None
    sock = socket.socket(fileno=int(text))
    os.set_inheritable(sock.fileno(), False)
    return sock


def inherited_flags() -> dict[str, str]:
    """The secret options the master this process replaced handed over (none if it did not)."""
    text = os.environ.pop(SECRETS_FD_VARIABLE, None)
    if not text:
        return {}
    with os.fdopen(int(text), "rb") as pipe:
        return json.loads(pipe.read())


def upgrade_command(flags: dict[str, str], path: str | None) -> tuple[list[str], dict[str, str]]:
    """(the command line that starts this hub again, the flags kept off it).

    The interpreter's own options stay; the hub's flags are written anew from
    what was parsed, so none of them can slip past in an abbreviated form."""
    script_args = len(sys.argv) - 1
    prefix = sys.orig_argv[: len(sys.orig_argv) - script_args]
    argv = [sys.executable, *prefix[1:]]
    secrets = {}
    for name, value in flags.items():
        if name in SECRET_OPTIONS or (name == "broker" and redact_url(value) != value):
            secrets[name] = value
        else:
            argv.append(f"--{name.replace('_', '-')}={value}")
    if path is not None:
        argv.append(f"--config={path}")
    return argv, secrets


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


class WorkerState(StrEnum):
    """Where a worker is in its life, as the master sees it."""

    STARTING = "starting"  # started, not ready yet
    SERVING = "serving"
    DRAINING = "draining"  # replaced by a reload: letting its clients go
    STOPPING = "stopping"  # asked to shut down
    EXITED = "exited"


class WorkerProcess:
    """One worker as the master tracks it."""

    def __init__(self, slot: int, generation: int) -> None:
        self.slot = slot
        self.generation = generation
        self.process: asyncio.subprocess.Process | None = None
        self.control: MessageStream | None = None
        self.state = WorkerState.STARTING
        self.ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self.started_at = time.monotonic()
        self.samples: list[Sample] = []  # the last snapshot received
        self.final: list[Sample] | None = None
        self.retired = False
        self.deadline: float | None = None
        self._snapshots = PendingRequests()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def __repr__(self) -> str:
        return f"<worker {self.slot} pid={self.pid} gen={self.generation} {self.state}>"

    def send(self, message: dict) -> bool:
        if self.control is None or self.control.closed:
            return False
        self.control.send(message)
        return True

    async def snapshot(self) -> list[Sample]:
        """Its current samples (the last known ones if it does not answer in time)."""
        if self.state == WorkerState.STARTING or not self.ready.done():
            return []
        snapshot_id, future = self._snapshots.new()
        if self.send({"t": "snapshot", "id": snapshot_id}):
            with contextlib.suppress(TimeoutError):
                self.samples = await asyncio.wait_for(future, SNAPSHOT_TIMEOUT)
        self._snapshots.forget(snapshot_id)
        return self.samples

    def answer(self, snapshot_id: int, samples: list[Sample]) -> None:
        self._snapshots.resolve(snapshot_id, samples)


class Supervisor:
    """Binds once, runs generations of workers, reloads, upgrades and stops them."""

    def __init__(
        self,
        config: HubConfig,
        load_config: Callable[[], HubConfig],
        sock: socket.socket,
        inherited: list[int] | None = None,
        *,
        internal_sock: socket.socket | None = None,
        flags: dict[str, str] | None = None,
        config_path: str | None = None,
    ) -> None:
        self.config = config
        self.load_config = load_config
        self.sock = sock
        self.internal_sock = internal_sock
        self.flags = dict(flags or {})  # as given on the command line, for an upgrade
        self.config_path = config_path
        self.inherited = list(inherited or [])  # old workers of the master this one replaced
        self.current: dict[int, WorkerProcess] = {}
        self.retiring: set[WorkerProcess] = set()
        self.generation = 0
        self.host: BrokerHost | None = None  # the broker the workers share, if the master keeps it
        self.dev_secret = os.environ.pop(DEV_SECRET_VARIABLE, None) or os.urandom(32).hex()
        self.lag = LoopLag()
        self.retired: list[Sample] = []  # counters of workers that exited
        self.restarts = 0
        self.reloads = {"ok": 0, "failed": 0}
        self._failures: dict[int, int] = {}
        self._stop: asyncio.Future | None = None
        self._stopping = False
        self._reloading = False
        self._upgrading = False
        self._started = False  # the first generation is serving
        self._tasks: set[asyncio.Task] = set()

    # -- running -------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._spawn_task, self.reload)
        loop.add_signal_handler(signal.SIGUSR2, self._spawn_task, self.upgrade)
        self.lag.start()
        try:
            await self._start_broker()
            first = self._new_generation(self.config)
            try:
                await self._wait_ready(first, self.config.worker_start_timeout)
            except WorkerFailed:
                await self._stop_workers(list(first.values()))
                raise
            self.current = first
            for worker in first.values():
                worker.state = WorkerState.SERVING
            self._started = True
            if self.inherited:
                self._spawn_task(self._reap_inherited)
            from fastws.hub.app import listening_line, warn_insecure

            port = self.sock.getsockname()[1]
            internal = self.internal_sock.getsockname()[1] if self.internal_sock else None
            logger.info(
                "fastws hub: master pid %d, %d workers, broker %s",
                os.getpid(),
                len(first),
                redact_url(self.config.broker),
            )
            if self.config.insecure:
                self._spawn_task(warn_insecure)
            print(listening_line(self.config, port, internal), flush=True)
            await self._stop
            logger.info("fastws hub: shutting down")
            await self._shutdown()
        finally:
            self.lag.stop()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self.host is not None:
                await self.host.close()
            self.sock.close()
            if self.internal_sock is not None:
                self.internal_sock.close()
        return 0

    def _request_stop(self, sig: signal.Signals) -> None:
        if self._stop is not None and not self._stop.done():
            logger.info("fastws hub: %s received", sig.name)
            self._stop.set_result(None)

    def _spawn_task(self, factory: Callable[[], Any]) -> None:
        task = asyncio.get_running_loop().create_task(factory())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_broker(self) -> None:
        broker = create_broker(self.config, "master")
        handed = os.environ.pop(BROKER_FD_VARIABLE, None)
        if broker is None:
            if handed:
                os.close(int(handed))  # the broker moved to Redis: nothing to take over
            return
        self.host = BrokerHost(broker)
        await self.host.start()
        if handed:
            self._take_over(int(handed))

    def _take_over(self, fd: int) -> None:
        """Hold the memory broker's state the master this one replaced handed over."""
        try:
            self.host.restore(handover.read(fd), self.inherited)
        except (handover.HandoverRefused, OSError) as exc:
            logger.error(
                "fastws hub: the broker state handed over is refused, starting empty: %s", exc
            )
            return
        sizes = self.host.broker.sizes()
        logger.info(
            "fastws hub: took over the memory broker: %d streams, %d publications, "
            "%d presence entries",
            *sizes,
        )

    # -- workers ---------------------------------------------------------------------------

    def _new_generation(self, config: HubConfig) -> dict[int, WorkerProcess]:
        self.generation += 1
        workers = {}
        for slot in range(config.workers):
            worker = WorkerProcess(slot, self.generation)
            workers[slot] = worker
            self._spawn_task(lambda w=worker: self._run_worker(w, config))
        return workers

    async def _wait_ready(self, workers: dict[int, WorkerProcess], timeout: float) -> None:
        """Until every worker of ``workers`` is ready; WorkerFailed names the first failure."""
        futures = [w.ready for w in workers.values()]
        done, pending = await asyncio.wait(
            futures, timeout=timeout, return_when=asyncio.FIRST_EXCEPTION
        )
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()
        if pending:
            raise WorkerFailed(f"workers did not report ready within {timeout:g} s")

    async def _run_worker(self, worker: WorkerProcess, config: HubConfig) -> None:
        """Start ``worker``, follow it until it exits, and handle the exit."""
        control_ours, control_theirs = socket.socketpair()
        broker_ours = broker_theirs = None
        fds = [self.sock.fileno(), control_theirs.fileno()]
        if self.host is not None:
            broker_ours, broker_theirs = socket.socketpair()
            fds.append(broker_theirs.fileno())
        env = {
            k: v for k, v in os.environ.items() if k not in HANDOVER and k not in SECRET_VARIABLES
        }
        env[FDS_VARIABLE] = ",".join(str(fd) for fd in fds)
        passed = list(fds)
        if self.internal_sock is not None:
            env[INTERNAL_FD_VARIABLE] = str(self.internal_sock.fileno())
            passed.append(self.internal_sock.fileno())
        try:
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "fastws.hub.process.worker", pass_fds=passed, env=env
            )
        except OSError as exc:
            control_ours.close()
            if broker_ours is not None:
                broker_ours.close()
            self._failed(worker, f"cannot start a worker: {exc}")
            return
        finally:
            control_theirs.close()
            if broker_theirs is not None:
                broker_theirs.close()
        worker.control = await MessageStream.open(
            control_ours, lambda message: self._on_control(worker, message)
        )
        if broker_ours is not None:
            await self.host.attach(
                broker_ours, f"worker {worker.slot} (pid {worker.pid})", worker.pid
            )
        worker.send(
            {
                "t": "config",
                "config": config_to_dict(config),
                "slot": worker.slot,
                "dev_secret": self.dev_secret,
            }
        )
        logger.debug("fastws hub: worker %d started (pid %d)", worker.slot, worker.pid)
        code = await worker.process.wait()
        await worker.control.close()
        self._exited(worker, code)

    def _failed(self, worker: WorkerProcess, error: str) -> None:
        if not worker.ready.done():
            worker.ready.set_exception(WorkerFailed(error))
            worker.ready.exception()  # retrieved: waiters re-raise it

    def _on_control(self, worker: WorkerProcess, message: dict) -> None:
        kind = message.get("t")
        if kind == "ready":
            if not worker.ready.done():
                worker.ready.set_result(message)
        elif kind == "failed":
            self._failed(worker, message.get("error", "the worker failed to start"))
        elif kind == "snapshot":
            worker.answer(message["id"], message["samples"])
        elif kind == "final":
            worker.final = message["samples"]
        elif kind == "scrape":
            self._spawn_task(lambda: self._answer_scrape(worker, message["id"]))

    def _exited(self, worker: WorkerProcess, code: int) -> None:
        previous, worker.state = worker.state, WorkerState.EXITED
        self._failed(worker, f"the worker exited with {_exit_text(code)} before it was ready")
        # Its counters stay in the totals: the final snapshot, else the last one seen.
        worker.retired = True
        self.retired = cumulative(
            merge([self.retired, worker.final if worker.final is not None else worker.samples])
        )
        self.retiring.discard(worker)
        if self.current.get(worker.slot) is not worker:
            logger.debug("fastws hub: worker %d (pid %s) exited", worker.slot, worker.pid)
            return
        del self.current[worker.slot]
        if self._stopping or previous in (WorkerState.STOPPING, WorkerState.DRAINING):
            return
        lived = time.monotonic() - worker.started_at
        failures = 0 if lived > STABLE_AFTER else self._failures.get(worker.slot, 0) + 1
        self._failures[worker.slot] = failures
        delay = min(MAX_BACKOFF, 0.1 * 2 ** max(0, failures - 1))
        logger.warning(
            "fastws hub: worker %d (pid %s) exited unexpectedly with %s; restarting in %.1f s",
            worker.slot,
            worker.pid,
            _exit_text(code),
            delay,
            extra={"worker": worker.slot, "exit": code},
        )
        self._spawn_task(lambda: self._restart(worker.slot, delay))

    async def _restart(self, slot: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._stopping or slot in self.current:
            return
        self.restarts += 1
        worker = WorkerProcess(slot, self.generation)
        self.current[slot] = worker
        self._spawn_task(lambda: self._run_worker(worker, self.config))
        try:
            await self._wait_ready({slot: worker}, self.config.worker_start_timeout)
        except WorkerFailed as exc:
            logger.error("fastws hub: worker %d could not restart: %s", slot, exc)
            await self._stop_workers([worker])
            return
        if worker.state == WorkerState.STARTING:
            worker.state = WorkerState.SERVING
            logger.info("fastws hub: worker %d restarted (pid %s)", slot, worker.pid)

    async def _stop_workers(self, workers: list[WorkerProcess], timeout: float = 0.0) -> None:
        """Ask ``workers`` to shut down; kill those still there after ``timeout`` + grace."""
        for worker in workers:
            if worker.state != WorkerState.EXITED:
                worker.state = WorkerState.STOPPING
                if not worker.send({"t": "stop"}) and worker.process is not None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.send_signal(signal.SIGTERM)
        await self._wait_exit(workers, timeout + EXIT_GRACE)

    async def _wait_exit(self, workers: list[WorkerProcess], timeout: float) -> None:
        running = [w.process.wait() for w in workers if w.process is not None]
        if not running:
            return
        done = asyncio.gather(*running)
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            for worker in workers:
                if worker.process is not None and worker.process.returncode is None:
                    logger.warning("fastws hub: killing worker %d (pid %s)", worker.slot, worker.pid)
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
            await asyncio.gather(*(w.process.wait() for w in workers if w.process is not None))

    # -- reload (SIGHUP) -----------------------------------------------------------------

    async def reload(self) -> bool:
        """New workers with fresh code and configuration; the old ones drain once they
        are ready. False when the reload was refused or abandoned."""
        if self._stopping:
            return False
        if not self._started:
            logger.warning("fastws hub: SIGHUP ignored: the workers are still starting")
            return False
        if self._reloading:
            logger.warning("fastws hub: SIGHUP ignored: a reload is already in progress")
            return False
        self._reloading = True
        try:
            return await self._reload()
        finally:
            self._reloading = False

    async def _reload(self) -> bool:
        logger.info("fastws hub: reloading (SIGHUP)")
        try:
            config = self.load_config()
        except ConfigError as exc:
            logger.error("fastws hub: reload refused, the configuration is invalid: %s", exc)
            self.reloads["failed"] += 1
            return False
        old_config = self.config
        kept = {}
        for name in ("host", "port", "broker", "internal_host", "internal_port"):
            if getattr(config, name) != getattr(old_config, name):
                kept[name] = getattr(old_config, name)
                shown = redact_url(kept[name]) if name == "broker" else kept[name]
                logger.warning(
                    "fastws hub: %s cannot change on a reload (it is %r until a restart); "
                    "the other changes apply",
                    name,
                    shown,
                )
        if kept:
            config = dataclasses.replace(config, **kept)
        fresh = self._new_generation(config)
        try:
            await self._wait_ready(fresh, config.worker_start_timeout)
        except WorkerFailed as exc:
            logger.error("fastws hub: reload abandoned, a new worker failed: %s", exc)
            await self._stop_workers(list(fresh.values()))
            self.reloads["failed"] += 1
            return False
        if self._stopping:
            await self._stop_workers(list(fresh.values()), config.shutdown_timeout)
            return False
        old = [w for w in self.current.values() if w.state != WorkerState.EXITED]
        self.current = fresh
        self.config = config
        setup_logging(config.log_level, config.log_format, role="master")
        for worker in fresh.values():
            worker.state = WorkerState.SERVING
        window = config.drain_window
        for worker in old:
            worker.state = WorkerState.DRAINING
            self.retiring.add(worker)
            worker.send({"t": "drain", "window": window})
        self.reloads["ok"] += 1
        logger.info(
            "fastws hub: reload done: generation %d serving with %d workers; "
            "%d old workers drain over %g s",
            self.generation,
            len(fresh),
            len(old),
            window,
        )
        # Deadline: the window, the close handshakes, then grace; later they are killed.
        self._spawn_task(
            lambda: self._wait_exit(old, window + config.shutdown_timeout + EXIT_GRACE)
        )
        return True

    # -- upgrade (SIGUSR2) -----------------------------------------------------------------

    async def upgrade(self) -> None:
        """Re-execute this master (the installed fastws), keeping the listening socket
        and handing over the memory broker's state."""
        if self._stopping:
            return
        if not self._started:
            logger.warning("fastws hub: SIGUSR2 ignored: the workers are still starting")
            return
        if self._upgrading:
            logger.warning("fastws hub: SIGUSR2 ignored: an upgrade is already in progress")
            return
        try:
            self.load_config()
        except ConfigError as exc:
            logger.error("fastws hub: upgrade refused, the configuration is invalid: %s", exc)
            return
        self._upgrading = True
        try:
            if self.host is not None:
                await self._freeze_broker()
                if self._stopping:  # a SIGTERM came while it waited: no upgrade
                    return
            self._exec()
        finally:
            self._upgrading = False
            if self.host is not None:
                self.host.thaw()  # still here: the exec failed

    async def _freeze_broker(self) -> None:
        """Refuse broker requests from now on and wait until the workers' links hold no
        reply of this process (the state is taken right after, in the same loop turn)."""
        self.host.freeze()
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while not self.host.flushed():
            if time.monotonic() > deadline:
                logger.warning(
                    "fastws hub: a worker did not take the broker's last replies within %g s; "
                    "its callers may see errors for calls that took effect",
                    FLUSH_TIMEOUT,
                )
                return
            await asyncio.sleep(0.005)

    def _exec(self) -> None:
        """Hand everything over and become the new master; returns only if the exec failed."""
        pids = [w.pid for w in (*self.current.values(), *self.retiring) if w.pid is not None]
        pids += self.inherited
        argv, secrets = upgrade_command(self.flags, self.config_path)
        env = dict(os.environ)
        env[LISTEN_FD_VARIABLE] = str(self.sock.fileno())
        env[INHERITED_VARIABLE] = ",".join(str(pid) for pid in pids)
        handed = [self.sock.fileno()]
        if self.internal_sock is not None:
            env[INTERNAL_LISTEN_FD_VARIABLE] = str(self.internal_sock.fileno())
            handed.append(self.internal_sock.fileno())
        if self.config.insecure:
            env[DEV_SECRET_VARIABLE] = self.dev_secret
        opened = []  # descriptors made for the new master, closed if the exec fails
        if self.host is not None:
            # In the loop turn where _freeze_broker found every reply flushed: no request
            # has run since, and none will.
            try:
                state = handover.write(self.host.state())
            except OSError as exc:
                logger.error("fastws hub: upgrade failed, cannot write the broker state: %s", exc)
                return
            env[BROKER_FD_VARIABLE] = str(state)
            opened.append(state)
        if secrets:
            reader, writer = os.pipe()  # small: the write fits in the pipe's buffer
            with os.fdopen(writer, "wb") as pipe:
                pipe.write(json.dumps(secrets).encode())
            env[SECRETS_FD_VARIABLE] = str(reader)
            opened.append(reader)
        handed += opened
        logger.info(
            "fastws hub: upgrading (SIGUSR2): re-executing %s; %d old workers drain",
            " ".join(argv),
            len(pids),
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in handed:
            os.set_inheritable(fd, True)
        try:
            os.execve(sys.executable, argv, env)
        except OSError as exc:
            for fd in handed:
                os.set_inheritable(fd, False)
            for fd in opened:
                os.close(fd)
            logger.error("fastws hub: upgrade failed, this master goes on: %s", exc)

    async def _reap_inherited(self) -> None:
        """Collect the exit of the workers of the master this one replaced."""
        while self.inherited:
            self._collect_inherited()
            await asyncio.sleep(0.2)

    def _collect_inherited(self) -> None:
        """Forget the inherited workers that have exited, without blocking."""
        for pid in list(self.inherited):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.inherited.remove(pid)
                if self.host is not None:
                    self.host.release(pid)
                logger.debug("fastws hub: old worker pid %d exited", pid)

    def _running(self) -> list[WorkerProcess]:
        """Every worker that has not exited, of the current generation or retiring."""
        return [w for w in (*self.current.values(), *self.retiring) if w.state != WorkerState.EXITED]

    # -- shutdown ------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self._stopping = True
        workers = self._running()
        for pid in self.inherited:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        await self._stop_workers(workers, self.config.shutdown_timeout)
        deadline = time.monotonic() + self.config.shutdown_timeout + EXIT_GRACE
        while self.inherited and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            self._collect_inherited()

    # -- metrics ---------------------------------------------------------------------------

    async def _answer_scrape(self, worker: WorkerProcess, scrape_id: int) -> None:
        text = await self.metrics_text()
        worker.send({"t": "metrics", "id": scrape_id, "text": text})

    def own_samples(self) -> list[Sample]:
        samples = process_samples("master", self.lag)
        counted = (WorkerState.STARTING, WorkerState.SERVING, WorkerState.DRAINING)
        states = dict.fromkeys(counted, 0)
        for worker in (*self.current.values(), *self.retiring):
            if worker.state in states:
                states[worker.state] += 1
        for state, count in states.items():
            samples.append(["fastws_workers", ["state", state.value], count])
        samples.append(["fastws_worker_restarts_total", [], self.restarts])
        for outcome, count in self.reloads.items():
            samples.append(["fastws_reloads_total", ["outcome", outcome], count])
        if self.host is not None:
            samples += broker_samples(self.host.broker, "master")
        return samples

    async def metrics_text(self) -> bytes:
        """Every live worker's snapshot, the exited workers' counters and the master's own."""
        workers = self._running()
        snapshots = await asyncio.gather(*(w.snapshot() for w in workers))
        live = [s for w, s in zip(workers, snapshots, strict=True) if not w.retired]
        return render(merge([self.retired, *live, self.own_samples()]))


def supervised(config: HubConfig) -> bool:
    """Whether ``python -m fastws`` runs a master and workers rather than one process."""
    return config.workers > 1 or LISTEN_FD_VARIABLE in os.environ


def run_supervisor(
    config: HubConfig,
    load_config: Callable[[], HubConfig],
    flags: dict[str, str] | None = None,
    config_path: str | None = None,
) -> int:
    """Bind (or take over the inherited sockets) and supervise until stopped.
    ``flags`` and ``config_path`` are what an upgrade starts the next master with."""
    sock = inherited_socket() or bind(config.host, config.port)
    internal_sock = inherited_socket(INTERNAL_LISTEN_FD_VARIABLE)
    if internal_sock is None and config.internal_port is not None:
        internal_sock = bind(config.internal_host or config.host, config.internal_port)
    inherited = [int(p) for p in os.environ.pop(INHERITED_VARIABLE, "").split(",") if p]
    supervisor = Supervisor(
        config,
        load_config,
        sock,
        inherited,
        internal_sock=internal_sock,
        flags=flags,
        config_path=config_path,
    )
    return asyncio.run(supervisor.run())


__all__ = [
    "Supervisor",
    "WorkerFailed",
    "WorkerState",
    "bind",
    "inherited_flags",
    "run_supervisor",
    "supervised",
    "upgrade_command",
]
