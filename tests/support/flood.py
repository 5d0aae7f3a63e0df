"""A hostile peer for backpressure tests: it sends as fast as it can and reads nothing.

Plain blocking sockets, no event loop, so that it behaves like an attacker's
script and not like a polite client. Its receive buffer is kept small, so the
server's replies back up in the server, where they would cost memory.
"""

from __future__ import annotations

import base64
import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from fastws.codec import FrameParser


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class FloodingPeer:
    """One WebSocket client connection, driven by hand."""

    def __init__(self, port: int, path: str = "/", headers: str = "") -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{headers}\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"the server closed during the handshake: {head!r}"
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        self.sock = sock
        self.sent = 0
        self._pending = b""  # the rest of a frame cut short
        self.received: list[bytes] = []
        self._parser = FrameParser(self._on_frame, client=True, max_size=1 << 26)
        self._parser.feed(rest)

    def _on_frame(self, opcode: int, fin: bool, rsv1: bool, payload: memoryview) -> None:
        self.received.append(bytes(payload))

    def send(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def send_until_stalled(self, frames: Iterator[bytes], limit: int, stall: float = 2.0) -> int:
        """Send frames, reading nothing, until ``limit`` bytes are out or the server has
        taken nothing for ``stall`` seconds; the frame cut short is finished later by
        ``read``. Returns how many frames were sent or begun."""
        sock = self.sock
        sock.setblocking(False)
        sent = count = 0
        while sent < limit:
            if not self._pending:
                self._pending = next(frames)
                count += 1
            if not select.select([], [sock], [], stall)[1]:
                break
            n = sock.send(self._pending)
            sent += n
            self._pending = self._pending[n:]
        self.sent = sent
        return count

    def read(self, messages: int, timeout: float = 120.0) -> list[bytes]:
        """Read (finishing the frame cut short) until ``messages`` have arrived."""
        sock = self.sock
        deadline = time.monotonic() + timeout
        while len(self.received) < messages:
            assert time.monotonic() < deadline, f"{len(self.received)} of {messages} messages"
            writers = [sock] if self._pending else []
            readable, writable, _ = select.select([sock], writers, [], 1.0)
            if writable:
                n = sock.send(self._pending)
                self._pending = self._pending[n:]
            if readable:
                data = sock.recv(1 << 20)
                assert data, f"the server closed after {len(self.received)} of {messages} messages"
                self._parser.feed(data)
        return self.received

    def close(self) -> None:
        self.sock.close()
