"""One WebSocket connection to the hub, from the upgrade until it closes.

A ``Client`` opens one session per connection attempt. The session numbers
commands and matches replies to them in the socket's callback, hands pushes
to the client, and fails every command still waiting when the socket closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from fastws.errors import ConnectionClosed
from fastws.hub.client.errors import Disconnected, may_reconnect
from fastws.hub.protocol.codes import HubError
from fastws.hub.protocol.wire import JSON, Wire
from fastws.protocol import Listener, WebSocket

if TYPE_CHECKING:
    from fastws.hub.client.client import Client

logger = logging.getLogger("fastws.hub.client")


class Pending(NamedTuple):
    """A command sent and waiting for its reply."""

    method: str
    future: asyncio.Future | None
    on_reply: Callable[[Any, HubError | None], None] | None


class Session(Listener):
    """One WebSocket connection to the hub, from the upgrade until it closes."""

    def __init__(self, client: Client, wire: Wire) -> None:
        self.client = client
        self.wire = wire
        self.ws: WebSocket | None = None
        self.pending: dict[int, Pending] = {}
        self.lost: asyncio.Future = asyncio.get_running_loop().create_future()
        self.close_code = 1006
        self.close_reason = ""
        self.disconnect_push: dict | None = None
        self.client_id: str | None = None
        self.user: str | None = None
        self.ping: float = 0.0
        self.token: str | None = None  # the connection's token, replaced by refresh

    # -- Listener callbacks ----------------------------------------------------------

    def on_message(self, ws: WebSocket, opcode: int, payload: memoryview) -> None:
        try:
            message = self._decode(opcode, payload)
        except Exception as exc:
            logger.warning("fastws hub client: undecodable frame from the hub: %s", exc)
            return
        if not isinstance(message, dict):
            logger.warning("fastws hub client: ignoring a frame that is not an object")
            return
        try:
            command_id = message.get("id")
            if command_id is None:
                self.client._on_push(self, message)
            else:
                self._on_reply(command_id, message)
        except Exception:  # a malformed message must not take the connection down
            logger.exception("fastws hub client: cannot handle %r", message)

    def _decode(self, opcode: int, payload: memoryview) -> Any:
        """Binary frames are MessagePack on a MessagePack connection; all others are JSON."""
        wire = self.wire if opcode == self.wire.opcode else JSON
        return wire.loads(payload)

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        push = self.disconnect_push
        if push is not None:
            code, reason = push.get("code", code), push.get("reason", reason)
        self.close_code, self.close_reason = code, reason
        error = Disconnected(code, reason, self.reconnect)
        pending, self.pending = self.pending, {}
        for entry in pending.values():
            self._settle(entry, None, error)
        if not self.lost.done():
            self.lost.set_result(None)

    # -- commands --------------------------------------------------------------------

    @property
    def reconnect(self) -> bool:
        push = self.disconnect_push
        if push is not None and push.get("reconnect") is False:
            return False
        return may_reconnect(self.close_code)

    def send(
        self,
        method: str,
        params: dict,
        on_reply: Callable[[Any, HubError | None], None] | None = None,
    ) -> asyncio.Future | None:
        """Send a command; its reply resolves the returned future (or calls ``on_reply``)."""
        ws = self.ws
        if self.lost.done() or ws is None or ws.closed:
            raise Disconnected(self.close_code, self.close_reason or "not connected")
        command_id = self.client._next_id()
        frame = self.wire.dumps({"id": command_id, "method": method, "params": params})
        future = None
        if on_reply is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(self._forget_if_cancelled(command_id))
        try:
            ws.send_message(self.wire.opcode, frame)
        except ConnectionClosed as exc:  # closing: the close frame is already out
            if future is not None:
                future.cancel()
            raise Disconnected(exc.code, exc.reason or "closing") from None
        self.pending[command_id] = Pending(method, future, on_reply)
        return future

    def _forget_if_cancelled(self, command_id: int) -> Callable[[asyncio.Future], None]:
        """A caller that stopped waiting (timeout) leaves no entry behind."""

        def forget(future: asyncio.Future) -> None:
            if future.cancelled():
                self.pending.pop(command_id, None)

        return forget

    def _on_reply(self, command_id: Any, message: dict) -> None:
        entry = self.pending.pop(command_id, None)
        if entry is None:
            return  # timed out and forgotten, or not ours
        error = message.get("error")
        if error is not None:
            if not isinstance(error, dict):
                error = {"message": str(error)}
            exc = HubError(error.get("code", 500), error.get("message") or "error")
            self._settle(entry, None, exc)
        else:
            self._settle(entry, message.get("result"), None)

    @staticmethod
    def _settle(entry: Pending, result: Any, error: HubError | None) -> None:
        if entry.on_reply is not None:
            try:
                entry.on_reply(result, error)
            except Exception:
                logger.exception("fastws hub client: error handling the reply to %s", entry.method)
            return
        future = entry.future
        if future is not None and not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def abort(self) -> None:
        """Drop the socket without a close handshake (a dead hub will not answer one)."""
        ws = self.ws
        if ws is not None and ws.transport is not None:
            ws.transport.abort()


__all__ = ["Pending", "Session"]
