"""A private Redis Cluster (three masters, one replica each) and a private Sentinel setup,
on free loopback ports, built from ``RedisServer`` processes.

A cluster node needs a second port (its bus); both are picked free. Node timeouts are
short (``NODE_TIMEOUT_MS``) so a killed master is replaced within a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.polling import until_blocking
from tests.support.redis import INSTALL_HINT, RedisServer

NODE_TIMEOUT_MS = 1000
DOWN_AFTER_MS = 1000


def redis_cli_binary() -> str:
    path = shutil.which("redis-cli")
    if path is None:
        pytest.fail(f"redis-cli is not installed; install it with: {INSTALL_HINT}", pytrace=False)
    return path


def info_field(server: RedisServer, section: str, field: str) -> str:
    for line in server.command("INFO", section).decode(errors="replace").splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return ""


class LocalRedisCluster:
    """Six ``redis-server --cluster-enabled yes`` joined by ``redis-cli --cluster create``.

    With ``tls`` (CA file, certificate, key: the servers' and the clients'), the nodes
    speak TLS to clients and to each other on their ``tls_ports`` (their plain ports
    stay open for the test's own checks).
    """

    def __init__(self, masters: int = 3, tls: tuple[str, str, str] | None = None) -> None:
        self.tls = tls
        self.tls_ports = [free_port() for _ in range(masters * 2)] if tls else []
        self.nodes = [
            RedisServer(
                None,
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--cluster-port", str(free_port()),
                "--cluster-replica-validity-factor", "0",  # any replica may take over
                "--repl-diskless-sync-delay", "0",
                *(self._tls_args(self.tls_ports[i]) if tls else ()),
            )
            for i in range(masters * 2)
        ]
        self.cli = redis_cli_binary()

    def _tls_args(self, port: int) -> tuple[str, ...]:
        ca, cert, key = self.tls
        return (
            "--tls-port", str(port),
            "--tls-cluster", "yes",
            "--tls-replication", "yes",
            "--tls-cert-file", cert,
            "--tls-key-file", key,
            "--tls-ca-cert-file", ca,
        )

    def addresses(self) -> list[str]:
        """Where clients reach the nodes (their TLS ports with ``tls``)."""
        return [f"127.0.0.1:{p}" for p in self.tls_ports or [n.port for n in self.nodes]]

    def url(self, scheme: str | None = None) -> str:
        scheme = scheme or ("rediss+cluster" if self.tls else "redis+cluster")
        return f"{scheme}://" + ",".join(self.addresses()[:2])

    def start(self) -> LocalRedisCluster:
        for node in self.nodes:
            node.start()
        self.run_cli(
            "--cluster", "create", *self.addresses(), "--cluster-replicas", "1", "--cluster-yes"
        )
        until_blocking(self.healthy, "the cluster is up on every node", timeout=30, interval=0.1)
        return self

    def run_cli(self, *args: str, timeout: float = 60) -> str:
        tls = []
        if self.tls:
            ca, cert, key = self.tls
            tls = ["--tls", "--cacert", ca, "--cert", cert, "--key", key]
        done = subprocess.run(
            [self.cli, *tls, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def alive(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def healthy(self) -> bool:
        """Every live node says the cluster is ok and sees as many masters with slots."""
        try:
            states = {info_field_cluster(n) for n in self.alive()}
        except OSError:
            return False
        return states == {"ok"} and len(self.masters()) == len(self.nodes) // 2

    def masters(self) -> list[RedisServer]:
        return [n for n in self.alive() if info_field(n, "replication", "role") == "master"
                and _owns_slots(n)]

    def master_of(self, key: str) -> RedisServer:
        """The master that owns ``key``'s slot, in its own view."""
        slot = int(self.alive()[0].command("CLUSTER", "KEYSLOT", key).decode().strip(":\r\n"))
        for node in self.masters():
            if slot in self.slots(node):
                return node
        raise AssertionError(f"no master owns slot {slot}")

    @staticmethod
    def slots(node: RedisServer) -> set[int]:
        """The slots ``node`` serves, in its own view."""
        owned: set[int] = set()
        for part in _myself(node)[8:]:
            if not part.startswith("["):  # "[slot->-node]": one being migrated or imported
                first, _, last = part.partition("-")
                owned.update(range(int(first), int(last or first) + 1))
        return owned

    @staticmethod
    def node_id(node: RedisServer) -> str:
        return _myself(node)[0]

    def flush(self) -> None:
        """Empty every master (the replicas follow)."""
        for node in self.masters():
            node.command("FLUSHALL")

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def info_field_cluster(node: RedisServer) -> str:
    for line in node.command("CLUSTER", "INFO").decode(errors="replace").splitlines():
        if line.startswith("cluster_state:"):
            return line.split(":", 1)[1].strip()
    return ""


def _myself(node: RedisServer) -> list[str]:
    for line in node.command("CLUSTER", "NODES").decode(errors="replace").splitlines():
        if "myself" in line:
            return line.split()
    return []


def _owns_slots(node: RedisServer) -> bool:
    return len(_myself(node)) > 8


class LocalSentinels:
    """A master, its replica, and three sentinels watching them as ``name``.

    With ``tls`` (CA file, certificate, key: the servers' and the clients'), each server
    also listens for TLS on a port of its own (``port_of``), and the sentinels, the
    replica and the hub use TLS between them.
    """

    def __init__(self, name: str = "fastws", tls: tuple[str, str, str] | None = None) -> None:
        self.name = name
        self.tls = tls
        self.tls_ports: dict[int, int] = {}  # plain port -> TLS port
        self.master = self._server("--repl-diskless-sync-delay", "0")
        self.replica = self._server("--replicaof", "127.0.0.1", str(self.port_of(self.master)))
        self.sentinels = [RedisServer() for _ in range(3)]
        for sentinel in self.sentinels:
            if tls:
                self.tls_ports[sentinel.port] = free_port()

    def _server(self, *args: str) -> RedisServer:
        if not self.tls:
            return RedisServer(None, *args)
        tls_port = free_port()
        options = [part for name, value in self._tls_options(tls_port) for part in ("--" + name, value)]
        server = RedisServer(None, *args, *options)
        self.tls_ports[server.port] = tls_port
        return server

    def _tls_options(self, port: int) -> list[tuple[str, str]]:
        ca, cert, key = self.tls
        return [
            ("tls-port", str(port)),
            ("tls-replication", "yes"),
            ("tls-cert-file", cert),
            ("tls-key-file", key),
            ("tls-ca-cert-file", ca),
        ]

    def port_of(self, server: RedisServer) -> int:
        """Where clients reach ``server`` (its TLS port with ``tls``)."""
        return self.tls_ports.get(server.port, server.port)

    def url(self, scheme: str | None = None) -> str:
        scheme = scheme or ("rediss+sentinel" if self.tls else "redis+sentinel")
        hosts = ",".join(f"127.0.0.1:{self.port_of(s)}" for s in self.sentinels)
        return f"{scheme}://{hosts}/{self.name}"

    def start(self) -> LocalSentinels:
        self.master.start()
        self.replica.start()
        until_blocking(
            lambda: info_field(self.replica, "replication", "master_link_status") == "up",
            "the replica is in sync",
            timeout=20,
        )
        for sentinel in self.sentinels:
            config = Path(sentinel.dir) / "sentinel.conf"
            tls = self._tls_options(self.port_of(sentinel)) if self.tls else []
            config.write_text(
                f"port {sentinel.port}\nbind 127.0.0.1\ndir {sentinel.dir}\n"
                + "".join(f"{name} {value}\n" for name, value in tls)
                + f"sentinel monitor {self.name} 127.0.0.1 {self.port_of(self.master)} 2\n"
                f"sentinel down-after-milliseconds {self.name} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {self.name} 5000\n"
            )
            sentinel.config_file = str(config)
            sentinel.args = ("--sentinel",)
            sentinel.start()
        until_blocking(self.watching, "every sentinel knows the replica and its peers", 20, 0.1)
        return self

    def watching(self) -> bool:
        for sentinel in self.sentinels:
            reply = sentinel.command("SENTINEL", "MASTER", self.name).decode(errors="replace")
            fields = reply.split("\r\n")[2::2]  # the values of a flat RESP array of bulk strings
            pairs = dict(zip(fields[::2], fields[1::2], strict=False))
            if pairs.get("num-slaves") != "1" or pairs.get("num-other-sentinels") != "2":
                return False
        return True

    def current_master_port(self) -> int:
        reply = self.sentinels[0].command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
        return int(reply.decode().split("\r\n")[4])

    def flush(self) -> None:
        """Empty the master (the replica follows)."""
        master = self.current_master_port()
        for server in (self.master, self.replica):
            if self.port_of(server) == master:
                server.command("FLUSHALL")

    def cleanup(self) -> None:
        for server in (self.master, self.replica, *self.sentinels):
            server.cleanup()


__all__ = ["LocalRedisCluster", "LocalSentinels", "info_field"]
