"""Separate network hosts on one machine: Linux network namespaces joined by a bridge.

``Network()`` makes a switch namespace holding a bridge; ``network.host(role)`` makes a
namespace with one veth link (``eth0``) on that bridge and an address in a private /24.
Names carry the test run's pid and a random part, so runs side by side never meet, and
``close()`` (also run at exit) first calls what was handed to ``adopt`` and deletes only the
namespaces made here, which takes their links, bridge and nftables rules with them.

Faults are nftables rules inside one host's namespace: ``cut(peer)`` drops every packet to
and from a peer (a partition that closes no TCP connection: a black hole), ``lose(percent)``
drops that share of the link's packets at random (``numgen random mod 100``). ``inside(host)``
moves the calling thread into a host's namespace, so that a test's event loop opens its
sockets there. Needs root, ``ip`` and ``nft``: otherwise the test fails and says so.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator

import pytest

INSTALL_HINT = "apt-get install -y nftables iproute2 (or scripts/install-test-deps.sh)"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def tool(name: str) -> str:
    path = shutil.which(name) or f"/usr/sbin/{name}"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{name} is not installed; install it with: {INSTALL_HINT}", pytrace=False)
    return path


def run(*argv: str) -> str:
    """Run a short command; its output, or a test failure that shows what it said."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


class Host:
    """One namespace with ``eth0`` at ``address`` on the network's bridge."""

    def __init__(self, network: Network, name: str, address: str) -> None:
        self.network = network
        self.name = name
        self.address = address
        self.rules: dict[str, str] = {}  # fault name -> nftables chain holding it

    def wrapper(self) -> tuple[str, ...]:
        """The command prefix that runs a program in this namespace."""
        return (self.network.ip, "netns", "exec", self.name)

    def run(self, *argv: str) -> str:
        return run(*self.wrapper(), *argv)

    def nft(self, script: str) -> None:
        self.run(self.network.nft, script)

    def cut(self, peer: Host) -> str:
        """Drop every packet to and from ``peer`` (no reset, no ICMP: a black hole)."""
        return self.add_fault(
            f"ip saddr {peer.address} drop", f"ip daddr {peer.address} drop", f"cut-{peer.name}"
        )

    def lose(self, percent: int) -> str:
        """Drop ``percent`` % of the packets on ``eth0``, each way, at random."""
        rule = f"numgen random mod 100 < {percent} drop"
        return self.add_fault(f'iifname "eth0" {rule}', f'oifname "eth0" {rule}', f"lose-{percent}")

    def add_fault(self, incoming: str, outgoing: str, name: str) -> str:
        table = f"fault{len(self.rules)}"
        self.nft(
            f"table inet {table} {{\n"
            f"  chain input {{ type filter hook input priority 0; {incoming}; }}\n"
            f"  chain output {{ type filter hook output priority 0; {outgoing}; }}\n"
            "}"
        )
        self.rules[name] = table
        return name

    def heal(self, name: str | None = None) -> None:
        """Remove one fault (all of them without a name)."""
        for fault in [name] if name else list(self.rules):
            self.nft(f"delete table inet {self.rules.pop(fault)}")

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """The calling thread in this namespace (sockets it opens stay there), then back."""
        with open("/proc/thread-self/ns/net") as home, open(f"/run/netns/{self.name}") as there:
            setns(there.fileno())
            try:
                yield
            finally:
                setns(home.fileno())


class Network:
    """A bridge in a namespace of its own and the hosts linked to it; see the module doc."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            pytest.fail("network namespace tests need root (ip netns, veth, nft)", pytrace=False)
        self.ip, self.nft = tool("ip"), tool("nft")
        self.prefix = f"fws{os.getpid()}{secrets.token_hex(2)}"
        self.subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250)}"
        self.namespaces: list[str] = []
        self.adopted: list[Callable[[], object]] = []
        self.numbers = itertools.count(1)
        atexit.register(self.close)
        self.switch = self.namespace("sw")
        try:
            self.in_switch("link", "add", "br0", "type", "bridge")
            self.in_switch("link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def namespace(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        try:
            run(self.ip, "netns", "add", name)
        except RuntimeError as exc:
            self.close()
            pytest.fail(f"cannot make a network namespace: {exc}", pytrace=False)
        self.namespaces.append(name)
        run(self.ip, "-n", name, "link", "set", "lo", "up")
        return name

    def in_switch(self, *argv: str) -> None:
        run(self.ip, "-n", self.switch, *argv)

    def host(self, role: str) -> Host:
        """A new namespace with a link on the bridge and the next address."""
        number = next(self.numbers)
        name = self.namespace(role)
        port = f"p{number}"
        run(self.ip, "-n", name, "link", "add", "eth0", "type", "veth",
            "peer", "name", port, "netns", self.switch)  # fmt: skip
        self.in_switch("link", "set", port, "master", "br0")
        self.in_switch("link", "set", port, "up")
        address = f"{self.subnet}.{number}"
        run(self.ip, "-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        run(self.ip, "-n", name, "link", "set", "eth0", "up")
        return Host(self, name, address)

    def adopt(self, stop: Callable[[], object]) -> None:
        """Call ``stop`` (which ends a process started in one of the hosts) before the
        namespaces go: a process outlives the deletion of its namespace's name."""
        self.adopted.append(stop)

    def close(self) -> None:
        """Stop what was adopted, last first, then delete the namespaces made here."""
        while self.adopted:
            with contextlib.suppress(Exception):
                self.adopted.pop()()
        while self.namespaces:
            subprocess.run([self.ip, "netns", "del", self.namespaces.pop()], capture_output=True)
        atexit.unregister(self.close)


__all__ = ["INSTALL_HINT", "Host", "Network"]
