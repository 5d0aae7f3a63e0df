"""Zero-downtime reload (SIGHUP) and upgrade (SIGUSR2) of a real master, under load."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson

import fastws
from fastws.errors import ConnectionClosed
from fastws.hub import Client
from tests.support.hub import http
from tests.support.hubprocess import HubProcess, dev_token
from tests.support.loops import run_async
from tests.support.polling import until

CHANNEL = "load:main"
CONFIG = """
[[namespaces]]
name = "load"
history_size = 2000
history_ttl = 300
"""
ROOM = """
[[namespaces]]
name = "room"
presence = true
"""
EXTRA = """
[[namespaces]]
name = "extra"
presence = true
"""


class Load:
    """A publisher (one request every ``interval`` seconds) and new-connection loops
    running against the hub until stopped."""

    def __init__(self, hub: HubProcess, interval: float = 0.01) -> None:
        self.hub = hub
        self.interval = interval
        self.stopping = asyncio.Event()
        self.acked: dict[int, int] = {}  # offset -> data of publications the API confirmed
        self.epochs: set[str] = set()
        self.refused: list[str] = []  # publications the API answered with an error
        self.failures: list[str] = []  # anything else: a publication or connection that failed
        self.handshakes = 0
        self.restarted_early = 0  # connections told to reconnect (1012) right after opening
        self.tasks: list[asyncio.Task] = []

    def start(self, connectors: int = 2) -> None:
        self.tasks.append(asyncio.create_task(self._publish()))
        for _ in range(connectors):
            self.tasks.append(asyncio.create_task(self._connect()))

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 30)

    async def _publish(self) -> None:
        n = 0
        while not self.stopping.is_set():
            try:
                status, body = await self.hub.api(
                    "POST", "/api/publish", {"channel": CHANNEL, "data": n}
                )
            except (OSError, TimeoutError) as exc:
                self.failures.append(f"publish {n}: {exc!r}")
            else:
                if status == 200:
                    self.acked[body["result"]["offset"]] = n
                    self.epochs.add(body["result"]["epoch"])
                else:
                    self.refused.append(f"publish {n}: HTTP {status} {body}")
            n += 1
            await asyncio.sleep(self.interval)

    async def _connect(self) -> None:
        while not self.stopping.is_set():
            try:
                async with asyncio.timeout(10):
                    ws = await fastws.connect(self.hub.url(), subprotocols=["fastws.json"])
            except Exception as exc:  # refused, reset, handshake error: all failures
                self.failures.append(f"handshake: {exc!r}")
                continue
            self.handshakes += 1
            try:
                await ws.send('{"id": 1, "method": "connect"}')
                async with asyncio.timeout(10):
                    reply = orjson.loads(await ws.recv())
                if reply.get("push") == "disconnect" and reply.get("code") == 1012:
                    self.restarted_early += 1  # opened on a worker that just began draining
                elif "result" not in reply:
                    self.failures.append(f"connect command: {reply}")
            except ConnectionClosed as exc:
                if exc.code == 1012:  # closed before our command went out: the same signal
                    self.restarted_early += 1
                else:
                    self.failures.append(f"after the handshake: {exc!r}")
            except Exception as exc:
                self.failures.append(f"after the handshake: {exc!r}")
            finally:
                await ws.close()


@run_async(loops=("uvloop",), timeout=120)
async def test_sighup_reload_under_load_loses_nothing(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG)
    args = ("--workers", "2", "--config", str(config), "--drain-window", "2")
    async with HubProcess(*args) as hub:
        subscribers, inboxes = await subscribed(hub, 6)
        load = Load(hub)
        try:
            load.start()
            await until(lambda: len(load.acked) >= 50, "publications before the reload", 20)
            old_workers = hub.workers()
            status, _ = await hub.api("GET", "/api/presence?channel=extra:a")
            assert status == 404  # the extra namespace is not declared yet
            config.write_text(CONFIG + EXTRA)  # the reload reads the file again
            hub.send(signal.SIGHUP)
            await hub.wait_log("reload done")
            await hub.wait_log("drained", count=len(old_workers))
            await until(lambda: not set(old_workers) & set(hub.workers()), "old workers gone", 20)
            published = len(load.acked)
            await until(lambda: len(load.acked) >= published + 50, "publications after", 20)
            await load.stop()
            await check_nothing_lost(load, subscribers, inboxes)
            assert load.refused == []
            assert load.handshakes > 20
            status, body = await hub.api("GET", "/api/presence?channel=extra:a")
            assert status == 200, body  # the new configuration is in force
        finally:
            await asyncio.gather(*(c.close() for c in subscribers))
            if not load.stopping.is_set():
                await load.stop()
        assert await hub.stop() == 0
        assert "Traceback" not in hub.log()


@run_async(loops=("uvloop",), timeout=120)
async def test_sigusr2_upgrade_under_load_hands_the_memory_broker_over(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG + ROOM)
    # Old workers drain over 4 s: long enough to see their clients' presence go over.
    args = ("--workers", "2", "--config", str(config), "--drain-window", "4")
    async with HubProcess(*args) as hub:
        subscribers, inboxes = await subscribed(hub, 10)
        watcher = subscribers[0]
        await watcher.subscribe("room:a")
        before = watcher.client_id
        assert await presence(hub, "room:a") == {before}
        load = Load(hub, interval=0.05)  # about 20 publications a second
        try:
            load.start()
            await until(lambda: len(load.acked) >= 30, "publications before the upgrade", 20)
            master, old_workers = hub.pid, hub.workers()
            hub.send(signal.SIGUSR2)
            assert await hub.wait_listening(2) == hub.port  # the new master, same port
            await hub.wait_log("took over the memory broker")
            # Its old worker still holds it (or has just let it go): its entry stays.
            assert before in await presence(hub, "room:a")
            await hub.wait_log("drained", count=len(old_workers))
            await until(
                lambda: not any(Path(f"/proc/{p}").exists() for p in old_workers),
                "old workers reaped",
                20,
            )
            # Once that worker exited, only the watcher's new connection is present.
            await until(
                lambda: presence_is(hub, "room:a", {watcher.client_id}), "presence moved", 10
            )
            assert watcher.client_id != before
            published = len(load.acked)
            await until(lambda: len(load.acked) >= published + 30, "publications after", 20)
            await load.stop()
            await check_nothing_lost(load, subscribers, inboxes)
            for client in subscribers:
                assert client.subscriptions[CHANNEL].recovered is True
            # Publications asked while the broker changed hands may be refused, not more.
            assert len(load.refused) < 10, load.refused
            assert load.handshakes > 20
        finally:
            await asyncio.gather(*(c.close() for c in subscribers))
            if not load.stopping.is_set():
                await load.stop()
        assert hub.process.returncode is None and hub.pid == master  # replaced in place
        assert len(hub.workers()) == 2 and not set(hub.workers()) & set(old_workers)
        assert await hub.stop() == 0
        assert "Traceback" not in hub.log()


async def presence(hub: HubProcess, channel: str) -> set[str]:
    status, body = await hub.api("GET", f"/api/presence?channel={channel}")
    assert status == 200, body
    return set(body["result"]["clients"])


async def presence_is(hub: HubProcess, channel: str, expected: set[str]) -> bool:
    return await presence(hub, channel) == expected


async def subscribed(hub: HubProcess, count: int) -> tuple[list[Client], list[list]]:
    """``count`` clients subscribed to the load's channel, each with its inbox."""
    clients, inboxes = [], []
    for i in range(count):
        client = Client(hub.url(), token=await dev_token(hub.port, f"s{i}"), backoff_base=0.2)
        await client.connect()
        inbox: list = []
        await client.subscribe(CHANNEL, inbox.append)
        clients.append(client)
        inboxes.append(inbox)
    return clients, inboxes


async def check_nothing_lost(load: Load, subscribers: list[Client], inboxes: list[list]) -> None:
    """Every subscriber holds every acknowledged publication exactly once, in order, in
    one epoch, and was moved to another worker without losing its place."""
    last = max(load.acked)
    await until(
        lambda: all(box and box[-1].offset >= last for box in inboxes),
        "every subscriber caught up",
        20,
    )
    assert load.failures == []
    assert len(load.epochs) == 1  # one stream all along
    first = min(load.acked)
    for client, box in zip(subscribers, inboxes, strict=True):
        offsets = [p.offset for p in box]
        assert offsets == list(range(first, offsets[-1] + 1)), client
        assert all(p.data == load.acked[p.offset] for p in box if p.offset in load.acked)
        assert set(load.acked) <= set(offsets)
        assert client.reconnects >= 1  # it did move
        assert client.subscriptions[CHANNEL].resyncs == 0


@run_async(loops=("uvloop",), timeout=60)
async def test_a_bad_reload_leaves_the_old_workers_serving(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG)
    async with HubProcess("--workers", "2", "--config", str(config)) as hub:
        workers = hub.workers()
        config.write_text("port = 'eighty'\n")  # refused before anything starts
        hub.send(signal.SIGHUP)
        await hub.wait_log("reload refused, the configuration is invalid")
        bad = tmp_path / "bad.pem"
        bad.write_text("not a certificate")
        config.write_text(f'certfile = "{bad}"\n' + CONFIG)  # valid, but workers cannot start
        hub.send(signal.SIGHUP)
        await hub.wait_log("reload abandoned, a new worker failed: certfile: cannot load")
        await until(lambda: hub.workers() == workers, "only the old workers remain", 20)
        status, _, body = await http(hub.port, "GET", "/health")
        assert (status, body) == (200, b"ok")
        samples = await hub.metrics()
        assert samples[("fastws_reloads_total", (("outcome", "failed"),))] == 2
        assert samples[("fastws_workers", (("state", "serving"),))] == 2
        assert await hub.stop() == 0
