"""One hub connection: reads commands, hands them to the command layer, answers, pushes.

A ``Session`` is the connection's ``Listener`` (callbacks, no coroutine per
message). Commands are checked in this order, each failure answered with its
error code: the frame type matches the encoding (else close 4502), the message
parses as an object with a positive integer ``id`` (else 400 without an id;
three in a row close with 4502), its size (413), the command rate (429; too
many refusals in a row close with 4029), a known method (404), connected first
(401), then the command's fields and permission (``fastws.hub.commands``).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

import orjson

from fastws.errors import ConnectionClosed
from fastws.hub import messages
from fastws.hub.auth import Credentials
from fastws.hub.broker import ClientInfo
from fastws.hub.commands import CLIENT_COMMANDS, Command, Context, Reply, as_hub_error
from fastws.hub.commands.subscriptions import (
    leave,
    leave_all,
    quietly,
    subscribe_by_server,
    unsubscribe_by_server,
)
from fastws.hub.hooks import HookContext, Hooks
from fastws.hub.limiter import TokenBucket
from fastws.hub.node import Node, Subscription
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import JSON, wire_for
from fastws.protocol import Listener, WebSocket

logger = logging.getLogger("fastws.hub")

MALFORMED_BEFORE_CLOSE = 3
REFRESH_RETRY = 10.0  # seconds before the refresh hook is asked again after it failed


class Session(Listener):
    """The hub side of one WebSocket connection."""

    def __init__(self, node: Node) -> None:
        config = node.config
        self.node = node
        self.ws: WebSocket | None = None
        self.wire = JSON
        self.context = Context(node, self)
        self.client_id: str | None = None
        self.credentials: Credentials | None = None
        self.client_info: ClientInfo | None = None
        self.meta: Any = None  # what the connect hook attached, seen only by hooks
        self.connecting = False  # a connect command is waiting for its hook
        # Commands that came after a connect still on its way (a hook, a remote broker):
        # they run, in order, once it is answered.
        self._held: list[tuple[Command, int, dict[str, Any]]] | None = None
        self.subscriptions: dict[str, Subscription] = {}
        self.closed = False
        self._max_message_size = config.max_message_size
        self._max_send_buffer = config.max_send_buffer
        self._bucket = TokenBucket(config.command_rate, config.command_burst)
        self._refused = 0
        self._malformed = 0
        self.stats = node.stats

    # -- Listener callbacks ----------------------------------------------------------

    def on_connect(self, ws: WebSocket) -> None:
        self.ws = ws
        self.wire = self.context.wire = wire_for(ws.subprotocol)
        self.stats.connections_total += 1
        self.node.welcome(self)

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._ended(code, reason)

    def on_message(self, ws: WebSocket, opcode: int, payload: memoryview) -> None:
        if self.closed:
            return
        wire = self.wire
        if opcode != wire.opcode:
            kind = "binary" if wire is JSON else "text"
            self.disconnect(
                codes.BAD_PROTOCOL, f"bad protocol use: {kind} frame on a {wire.name} connection"
            )
            return
        stats = self.stats
        try:
            message = wire.loads(payload)
        except Exception:
            self._count_in(stats, "invalid", len(payload))
            self._bad_message("the message is not a valid command encoding")
            return
        if type(message) is not dict:
            self._count_in(stats, "invalid", len(payload))
            self._bad_message("a command must be an object")
            return
        method = message.get("method")
        command = CLIENT_COMMANDS.get(method) if type(method) is str else None
        self._count_in(stats, method if command is not None else "unknown", len(payload))
        command_id = message.get("id")
        if type(command_id) is not int or command_id <= 0:
            self._bad_message("a command needs an 'id' that is a positive integer")
            return
        self._malformed = 0
        if len(payload) > self._max_message_size:
            self.error(
                command_id,
                codes.MESSAGE_TOO_LARGE,
                f"message of {len(payload)} bytes is over the limit of {self._max_message_size}",
            )
            return
        if not self._bucket.take():
            self._refuse(command_id)
            return
        self._refused = 0
        if command is None:
            self.error(command_id, codes.NOT_FOUND, f"unknown method {method!r}")
            return
        params = message.get("params", {})
        if len(message) > 2 + ("params" in message):
            unknown = sorted(set(message) - {"id", "method", "params"})
            self.error(command_id, codes.BAD_REQUEST, f"unknown field {unknown[0]!r} in command")
            return
        if type(params) is not dict:
            self.error(command_id, codes.BAD_REQUEST, "params must be an object")
            return
        if self.credentials is None:
            if self._held is not None:
                self._held.append((command, command_id, params))
                return
            if method != "connect":
                self.error(command_id, codes.UNAUTHORIZED, "send connect first")
                return
            self._held = []
        self._execute(command, command_id, params)

    @staticmethod
    def _count_in(stats: Any, kind: str, nbytes: int) -> None:
        stats.messages_in[kind] = stats.messages_in.get(kind, 0) + 1
        stats.bytes_in[kind] = stats.bytes_in.get(kind, 0) + nbytes

    # -- sending -------------------------------------------------------------------------

    def _send(self, message: Any, kind: str) -> None:
        if not self.closed:
            self._send_encoded(self.wire.dumps(message), kind)

    def push_message(self, message: Any, kind: str) -> None:
        """A push built for this connection alone."""
        self._send(message, kind)

    def _send_encoded(self, data: bytes, kind: str) -> None:
        self.stats.sent(kind, 1, len(data))
        with contextlib.suppress(ConnectionClosed):  # closing: the message has no reader
            self.ws.send_message(self.wire.opcode, data)

    def reply(self, command_id: int, method: str, result: Any) -> None:
        if not self.closed:
            self._send_encoded(self.wire.reply(command_id, method, result), "reply")

    def error(self, command_id: int | None, code: int, message: str) -> None:
        self._send(messages.error_reply(command_id, code, message), "error")

    def push(self, frame: bytes) -> None:
        """Queue a frame built for many; a client that does not read is dropped with 4008."""
        ws = self.ws
        if ws.write_buffer_size + len(frame) > self._max_send_buffer:
            self._drop_slow_consumer()
            return
        ws.send_prebuilt(frame)

    def _drop_slow_consumer(self) -> None:
        if self.closed:
            return
        self.stats.slow_consumers += 1
        # No disconnect push: the close frame is queued after what the client has not read.
        self._close_now(codes.SLOW_CONSUMER.code, codes.SLOW_CONSUMER.reason)

    def disconnect(self, disconnect: codes.Disconnect, reason: str | None = None) -> None:
        """Push ``disconnect`` and close with its code."""
        if self.closed:
            return
        reason = reason or disconnect.reason
        self._send(
            messages.disconnect_push(replace(disconnect, reason=reason)), "disconnect"
        )
        self._close_now(disconnect.code, reason)

    def _close_now(self, code: int, reason: str) -> None:
        """Close from the server side: no more pushes, and the channels are left at once."""
        self.closed = True
        self.ws.close_nowait(code, reason)
        self._ended(code, reason)

    def _ended(self, code: int, reason: str) -> None:
        self._log_disconnect(code, reason)
        hooks = self.node.hooks
        if hooks is not None and self.credentials is not None and hooks.has("disconnect"):
            self.node.run(hooks.notify("disconnect", self.hook_context(), code=code, reason=reason))
        self._leave_everything()

    def _log_disconnect(self, code: int, reason: str) -> None:
        """One line per connection that ends, with its id, user and why."""
        disconnects = self.stats.disconnects
        disconnects[code] = disconnects.get(code, 0) + 1
        user = self.credentials.user if self.credentials is not None else None
        address = self.ws.remote_address if self.ws is not None else None
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else None
        logger.info(
            "fastws hub: disconnect conn=%s user=%s peer=%s code=%d reason=%s",
            self.client_id or "-",
            "-" if user is None else repr(user),
            peer or "-",
            code,
            repr(reason),
            extra={
                "conn": self.client_id,
                "user": user,
                "peer": peer,
                "code": code,
                "reason": reason,
            },
        )

    def _leave_everything(self) -> None:
        """Leave the channels at once: no leave should wait for the close handshake."""
        self.node.forget(self)
        subscriptions = list(self.subscriptions.values())
        self.subscriptions.clear()
        if subscriptions:
            self.node.run(leave_all(self, subscriptions))

    # -- checks ---------------------------------------------------------------------------

    def _bad_message(self, why: str) -> None:
        self._malformed += 1
        if self._malformed >= MALFORMED_BEFORE_CLOSE:
            self.disconnect(codes.BAD_PROTOCOL, f"bad protocol use: {why}")
        else:
            self.error(None, codes.BAD_REQUEST, why)

    def _refuse(self, command_id: int) -> None:
        self._refused += 1
        if self._refused >= self.node.config.max_rejected_commands:
            self.disconnect(codes.TOO_MANY_REQUESTS)
            return
        self.error(
            command_id,
            codes.LIMIT_EXCEEDED,
            f"too many requests: over {self._bucket.rate:g} commands per second",
        )

    # -- commands ----------------------------------------------------------------------------

    def _execute(self, command: Command, command_id: int, params: dict[str, Any]) -> None:
        """Run a command: at once when it never waits, else through the node (maybe a task)."""
        start = time.perf_counter()
        try:
            values = command.prepare(self.context, params)
            if command.inline:
                self._answer(command, command_id, command.handler(self.context, values))
            else:
                coro = command.handler(self.context, values)
                self.node.run(self._finish(command, command_id, coro, start))
                return
        except Exception as exc:
            self._fail(command_id, exc)
        self.stats.command_done(command.name, time.perf_counter() - start)
        if command.name == "connect":
            self._release_held()

    async def _finish(
        self, command: Command, command_id: int, pending: Coroutine, start: float
    ) -> None:
        try:
            result = await pending
            if type(result) is Reply:
                self.reply(command_id, command.name, result.result)
                if command.name == "connect":
                    self._release_held()
                await result.then()
            else:
                self._answer(command, command_id, result)
        except Exception as exc:
            self._fail(command_id, exc)
        self.stats.command_done(command.name, time.perf_counter() - start)
        if command.name == "connect":
            self._release_held()

    def _release_held(self) -> None:
        """The connect is answered: run what came after it, in order (refused when it failed)."""
        held, self._held = self._held, None
        for command, command_id, params in held or ():
            if self.closed:
                return
            if self.credentials is None:
                self.error(command_id, codes.UNAUTHORIZED, "send connect first")
            else:
                self._execute(command, command_id, params)

    def _answer(self, command: Command, command_id: int, result: Any) -> None:
        if result is not None:
            self.reply(command_id, command.name, result)

    def _fail(self, command_id: int, exc: Exception) -> None:
        """Answer a failed command; an error that carries a disconnect then closes."""
        error = as_hub_error(exc)
        if error is None:
            logger.exception("fastws hub: error in a command of client %s", self.client_id)
            error = codes.HubError(codes.INTERNAL, "internal error")
        self.error(command_id, error.code, error.message)
        if error.disconnect is not None:
            self.disconnect(error.disconnect)

    def token_expired(self, channel: str, now: float) -> None:
        """A token expiry noted for this connection ("") or its subscription to ``channel``
        came: close, or unsubscribe with a push, unless a refresh moved it meanwhile."""
        if not channel:
            expires = self.credentials.expires_at
            if expires is None or expires > now:
                return
            hooks = self.node.hooks
            if hooks is not None and hooks.has("refresh"):
                self.node.run(self._refresh_by_hook(hooks))
            else:
                self.disconnect(codes.TOKEN_EXPIRED)
            return
        sub = self.subscriptions.get(channel)
        if sub is None or sub.expires_at is None or sub.expires_at > now:
            return
        self.end_subscription(sub, codes.SUBSCRIPTION_EXPIRED)

    def end_subscription(self, sub: Subscription, why: codes.Unsubscribe) -> None:
        """End one subscription with an ``unsubscribe`` push; the connection stays."""
        if self.subscriptions.get(sub.channel) is not sub:
            return
        del self.subscriptions[sub.channel]
        sub.buffer = []  # silent from now on: leave() removes it from the channel
        self._send(messages.unsubscribe_push(sub.channel, why), "unsubscribe")
        self.node.run(quietly(leave(self, sub)))

    def subscribe_by_server(self, channel: str) -> None:
        """The server API subscribes this connection: a ``subscribe`` push, then publications."""
        if not self.closed:
            self.node.run(subscribe_by_server(self, channel))

    def unsubscribe_by_server(self, channel: str) -> None:
        """The server API unsubscribes this connection: an ``unsubscribe`` push."""
        if not self.closed and channel in self.subscriptions:
            self.node.run(unsubscribe_by_server(self, channel))

    async def _refresh_by_hook(self, hooks: Hooks) -> None:
        """Extend the connection as the refresh hook says, or end it; while the hook fails,
        ask again a little later."""
        try:
            result = await hooks.refresh(self.hook_context())
        except codes.HubError as exc:
            if exc.code == codes.BACKEND_ERROR:
                self.node.expires(self, time.time() + REFRESH_RETRY)
            else:  # refused
                self.disconnect(exc.disconnect or codes.TOKEN_EXPIRED)
            return
        if self.closed:
            return
        if result.expired:
            self.disconnect(codes.TOKEN_EXPIRED)
            return
        info = orjson.dumps(result.info) if result.info is not None else self.credentials.info
        self.credentials = replace(self.credentials, expires_at=result.expire_at, info=info)
        self.node.expires(self, result.expire_at)

    def hook_context(self) -> HookContext:
        """Who this connection is, as hooks see it."""
        credentials, ws = self.credentials, self.ws
        address = ws.remote_address
        info = credentials.info if credentials is not None else None
        return HookContext(
            self.client_id,
            credentials.user if credentials is not None else None,
            ws.user_data.headers,
            address[0] if isinstance(address, tuple) else None,
            self.wire.name,
            orjson.loads(info) if info is not None else None,
            self.meta,
        )

    def connected(self, credentials: Credentials) -> None:
        """``connect`` succeeded: this connection now has an id and a user."""
        self.credentials = credentials
        self.client_id = str(uuid.uuid4())
        self.client_info = ClientInfo(self.client_id, credentials.user, credentials.info)
        self.node.connected(self)


__all__ = ["Session"]
