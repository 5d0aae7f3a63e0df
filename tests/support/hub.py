"""Helpers for the hub's end-to-end tests: a hub on port 0, a raw protocol client, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import jwt
import msgpack
import orjson

import fastws
from fastws.errors import ConnectionClosed
from fastws.hub.app import Hub
from fastws.hub.broker import Broker
from fastws.hub.config import HubConfig
from fastws.hub.namespaces import Namespace
from fastws.hub.protocol.wire import PROTOBUF_CLIENT
from tests.support.leaks import secret
from tests.support.polling import PATIENCE

SECRET = secret("a test secret of at least 32 bytes!")
ROOMS = Namespace("room", history_size=50, history_ttl=60, presence=True, join_leave=True)
PLAIN = Namespace("plain")


def make_config(**options: Any) -> HubConfig:
    """A hub on a free port; without a token key, in insecure mode (said here, on purpose)."""
    if options.get("jwt_secret") is None and options.get("jwt_public_key") is None:
        options.setdefault("insecure", True)
    options.setdefault("port", 0)
    options.setdefault("namespaces", [ROOMS, PLAIN])
    options.setdefault("shutdown_timeout", 2.0)
    return HubConfig(**options).validate()


@contextlib.asynccontextmanager
async def running_hub(broker: Broker | None = None, **options: Any) -> AsyncIterator[Hub]:
    async with Hub(make_config(**options), broker=broker) as hub:
        yield hub


def token(sub: str = "alice", secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    claims.setdefault("exp", int(time.time()) + 3600)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"sub": sub, **claims}, secret, algorithm=algorithm)


class HubClient:
    """A hub connection driven by hand: ``call`` answers its reply, pushes are kept in order."""

    def __init__(self, ws: fastws.ClientConnection, binary: bool, protobuf: bool = False) -> None:
        self.ws = ws
        self.binary = binary  # MessagePack
        self.protobuf = protobuf  # through the client's Protobuf wire, data as Python values
        self.pushes: deque[dict] = deque()
        self.replies: dict[int, dict] = {}
        self.unsolicited: list[dict] = []  # errors without an id
        self.next_id = 0
        self.client_id: str | None = None

    @classmethod
    async def open(
        cls,
        port: int,
        *,
        token: str | None = None,
        connect: bool = True,
        binary: bool = False,
        protobuf: bool = False,
        query: str = "",
        headers: tuple[tuple[str, str], ...] = (),
        subprotocols: tuple[str, ...] | None = None,
    ) -> HubClient:
        if subprotocols is None:
            subprotocols = (
                ("fastws.protobuf",)
                if protobuf
                else ("fastws.msgpack",)
                if binary
                else ("fastws.json",)
            )
        ws = await fastws.connect(
            f"ws://127.0.0.1:{port}/connection{query}",
            subprotocols=subprotocols,
            headers=headers,
            compression=False,
        )
        client = cls(ws, binary, protobuf)
        if connect:
            params = {} if token is None else {"token": token}
            result = await client.result("connect", params)
            client.client_id = result["client"]
        return client

    def encode(self, message: Any) -> str | bytes:
        if self.protobuf:
            return PROTOBUF_CLIENT.dumps(message)
        return msgpack.packb(message) if self.binary else orjson.dumps(message).decode()

    def decode(self, frame: str | bytes) -> dict:
        if self.protobuf:
            assert isinstance(frame, bytes), f"text frame on a protobuf connection: {frame!r}"
            return PROTOBUF_CLIENT.loads(frame)
        if self.binary:
            assert isinstance(frame, bytes), f"text frame on a msgpack connection: {frame!r}"
            return msgpack.unpackb(frame)
        assert isinstance(frame, str), f"binary frame on a JSON connection: {frame!r}"
        return orjson.loads(frame)

    def send_command(self, method: str, params: dict | None = None) -> int:
        self.next_id += 1
        command: dict[str, Any] = {"id": self.next_id, "method": method}
        if params is not None:
            command["params"] = params
        self.ws.send_nowait(self.encode(command))
        return self.next_id

    async def _read(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            message = self.decode(await self.ws.recv())
        if "push" in message:
            self.pushes.append(message)
        elif "id" in message:
            self.replies[message["id"]] = message
        else:
            self.unsolicited.append(message)

    async def reply(self, command_id: int, timeout: float = PATIENCE) -> dict:
        while command_id not in self.replies:
            await self._read(timeout)
        return self.replies.pop(command_id)

    async def call(self, method: str, params: dict | None = None, timeout: float = PATIENCE) -> dict:
        """The whole reply: ``{"id":..,"result":..}`` or ``{"id":..,"error":..}``."""
        return await self.reply(self.send_command(method, params), timeout)

    async def result(self, method: str, params: dict | None = None) -> Any:
        reply = await self.call(method, params)
        assert "error" not in reply, f"{method} failed: {reply}"
        return reply["result"]

    async def error(self, method: str, params: dict | None = None) -> tuple[int, str]:
        reply = await self.call(method, params)
        assert "error" in reply, f"{method} did not fail: {reply}"
        return reply["error"]["code"], reply["error"]["message"]

    async def push(self, timeout: float = PATIENCE) -> dict:
        while not self.pushes:
            await self._read(timeout)
        return self.pushes.popleft()

    async def pushes_of(self, kind: str, count: int, timeout: float = PATIENCE) -> list[dict]:
        """The next ``count`` pushes of ``kind``; pushes of other kinds are dropped."""
        found = []
        while len(found) < count:
            push = await self.push(timeout)
            if push["push"] == kind:
                found.append(push)
        return found

    async def no_more_pushes(self) -> None:
        """Everything sent so far has arrived (a ping round trip) and no push is waiting."""
        await self.result("ping")
        assert not self.pushes, f"unexpected pushes: {list(self.pushes)}"

    async def closed(self, timeout: float = PATIENCE) -> tuple[int, str]:
        """Read until the server closes; (close code, reason)."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self._read(timeout)
        await self.ws.wait_closed()
        return self.ws.close_code, self.ws.close_reason

    async def close(self) -> None:
        await self.ws.close()


async def http(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    api_key: str | None = None,
    host: str = "127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request; (status, lowercased headers, body).

    A request may wait in the listening socket's queue, e.g. while the master is replaced.
    """
    reader, writer = await asyncio.open_connection(host, port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    if api_key is not None:
        lines.append(f"Authorization: apikey {api_key}")
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
    try:
        async with asyncio.timeout(PATIENCE):
            data = await reader.read()
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), fields, payload


async def api(
    port: int,
    method: str,
    target: str,
    body: Any = None,
    api_key: str | None = "key",
    host: str = "127.0.0.1",
) -> tuple[int, Any]:
    """A JSON API call: (status, decoded body)."""
    raw = orjson.dumps(body) if body is not None else None
    status, _, payload = await http(port, method, target, raw, api_key=api_key, host=host)
    return status, orjson.loads(payload) if payload else None
