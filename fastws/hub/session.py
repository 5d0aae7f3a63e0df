"""One hub connection: reads commands, checks them, answers, and receives pushes.

A ``Session`` is the connection's ``Listener`` (callbacks, no coroutine per
message). Commands are checked in this order, each failure answered with its
error code: the frame type matches the encoding (else close 4502), the message
parses as an object with a positive integer ``id`` (else 400 without an id;
three in a row close with 4502), its size (413), the command rate (429; too
many refusals in a row close with 4029), a known method (404), connected first
(401), then the method's own checks.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastws.errors import ConnectionClosed
from fastws.hub import messages
from fastws.hub.auth import Credentials, TokenError
from fastws.hub.broker import BrokerUnavailable, ClientInfo, StreamPosition
from fastws.hub.channels import channel_error
from fastws.hub.node import Node, Subscription, recovers
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import JSON, encode_data, wire_for
from fastws.protocol import Listener, WebSocket

logger = logging.getLogger("fastws.hub")

MALFORMED_BEFORE_CLOSE = 3

_FIELDS = {
    "connect": ({"token"}, ()),
    "subscribe": ({"channel", "since"}, ("channel",)),
    "unsubscribe": ({"channel"}, ("channel",)),
    "publish": ({"channel", "data"}, ("channel", "data")),
    "send": ({"user", "data"}, ("user", "data")),
    "presence": ({"channel"}, ("channel",)),
    "history": ({"channel", "since", "limit"}, ("channel",)),
    "ping": (set(), ()),
}


def check_fields(method: str, params: dict[str, Any]) -> None:
    allowed, required = _FIELDS[method]
    for key in params:
        if key not in allowed:
            raise codes.HubError(codes.BAD_REQUEST, f"unknown field {key!r} in {method} params")
    for key in required:
        if key not in params:
            raise codes.HubError(codes.BAD_REQUEST, f"{method} needs the {key!r} field")


def check_channel(channel: Any) -> str:
    error = channel_error(channel)
    if error is not None:
        raise codes.HubError(codes.BAD_REQUEST, error)
    return channel


def parse_position(value: Any) -> StreamPosition | None:
    """The ``since`` field: ``{"epoch": str, "offset": int}`` or absent."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"epoch", "offset"}
        or not isinstance(value["epoch"], str)
        or type(value["offset"]) is not int
        or value["offset"] < 0
    ):
        raise codes.HubError(
            codes.BAD_REQUEST, 'since must be {"epoch": string, "offset": integer >= 0}'
        )
    return StreamPosition(value["offset"], value["epoch"])


class Session(Listener):
    """The hub side of one WebSocket connection."""

    def __init__(self, node: Node) -> None:
        config = node.config
        self.node = node
        self.auth = node.auth
        self.ws: WebSocket | None = None
        self.wire = JSON
        self.client_id: str | None = None
        self.credentials: Credentials | None = None
        self.client_info: ClientInfo | None = None
        self.subscriptions: dict[str, Subscription] = {}
        self.closed = False
        self._max_message_size = config.max_message_size
        self._max_send_buffer = config.max_send_buffer
        self._rate = config.command_rate
        self._burst = float(config.command_burst)
        self._tokens = self._burst
        self._stamp = time.monotonic()
        self._refused = 0
        self._malformed = 0
        self.stats = node.stats
        self._command: tuple[str, float] | None = None  # (method, arrival) until deferred

    # -- Listener callbacks ----------------------------------------------------------

    def on_connect(self, ws: WebSocket) -> None:
        self.ws = ws
        self.wire = wire_for(ws.subprotocol)
        self.stats.connections_total += 1
        self.node.welcome(self)

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self._log_disconnect(code, reason)
        self._leave_everything()

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
            command = wire.loads(payload)
        except Exception:
            self._count_in(stats, "invalid", len(payload))
            self._bad_message("the message is not a valid command encoding")
            return
        if type(command) is not dict:
            self._count_in(stats, "invalid", len(payload))
            self._bad_message("a command must be an object")
            return
        method = command.get("method")
        handler = _HANDLERS.get(method) if type(method) is str else None
        self._count_in(stats, method if handler is not None else "unknown", len(payload))
        command_id = command.get("id")
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
        if not self._take_token():
            self._refuse(command_id)
            return
        if handler is None:
            self.error(command_id, codes.NOT_FOUND, f"unknown method {method!r}")
            return
        params = command.get("params", {})
        if len(command) > 2 + ("params" in command):
            unknown = sorted(set(command) - {"id", "method", "params"})
            self.error(command_id, codes.BAD_REQUEST, f"unknown field {unknown[0]!r} in command")
            return
        if type(params) is not dict:
            self.error(command_id, codes.BAD_REQUEST, "params must be an object")
            return
        if self.credentials is None and method != "connect":
            self.error(command_id, codes.UNAUTHORIZED, "send connect first")
            return
        start = time.perf_counter()
        self._command = (method, start)
        handler(self, command_id, params)
        if self._command is not None:  # answered at once, not deferred by _run
            self._command = None
            stats.command_done(method, time.perf_counter() - start)

    @staticmethod
    def _count_in(stats: Any, kind: str, nbytes: int) -> None:
        stats.messages_in[kind] = stats.messages_in.get(kind, 0) + 1
        stats.bytes_in[kind] = stats.bytes_in.get(kind, 0) + nbytes

    # -- sending -------------------------------------------------------------------------

    def _send(self, message: Any, kind: str) -> None:
        if self.closed:
            return
        wire = self.wire
        data = wire.dumps(message)
        self.stats.sent(kind, 1, len(data))
        with contextlib.suppress(ConnectionClosed):  # closing: the message has no reader
            self.ws.send_frame(wire.opcode, data)

    def reply(self, command_id: int, result: Any) -> None:
        self._send({"id": command_id, "result": result}, "reply")

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
            messages.disconnect_push(codes.Disconnect(disconnect.code, reason)), "disconnect"
        )
        self._close_now(disconnect.code, reason)

    def _close_now(self, code: int, reason: str) -> None:
        """Close from the server side: no more pushes, and the channels are left at once."""
        self.closed = True
        self._log_disconnect(code, reason)
        self.ws.close_nowait(code, reason)
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
            self.node.run(self._leave_all(subscriptions))

    # -- checks ---------------------------------------------------------------------------

    def _bad_message(self, why: str) -> None:
        self._malformed += 1
        if self._malformed >= MALFORMED_BEFORE_CLOSE:
            self.disconnect(codes.BAD_PROTOCOL, f"bad protocol use: {why}")
        else:
            self.error(None, codes.BAD_REQUEST, why)

    def _take_token(self) -> bool:
        now = time.monotonic()
        tokens = self._tokens + (now - self._stamp) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        self._stamp = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        self._refused = 0
        return True

    def _refuse(self, command_id: int) -> None:
        self._refused += 1
        if self._refused >= self.node.config.max_rejected_commands:
            self.disconnect(codes.TOO_MANY_REQUESTS)
            return
        self.error(
            command_id,
            codes.LIMIT_EXCEEDED,
            f"too many requests: over {self._rate:g} commands per second",
        )

    # -- commands ----------------------------------------------------------------------------

    def _run(self, command_id: int, coro: Coroutine) -> None:
        timing, self._command = self._command, None
        self.node.run(self._answer(command_id, coro, timing))

    async def _answer(
        self, command_id: int, pending: Coroutine, timing: tuple[str, float] | None = None
    ) -> None:
        try:
            result = await pending
        except codes.HubError as exc:
            self.error(command_id, exc.code, exc.message)
        except BrokerUnavailable as exc:
            self.error(command_id, codes.BROKER_UNAVAILABLE, f"broker unavailable: {exc}")
        except Exception:
            logger.exception("fastws hub: error in a command of client %s", self.client_id)
            self.error(command_id, codes.INTERNAL, "internal error")
        else:
            if result is not None:
                self.reply(command_id, result)
        if timing is not None:
            self.stats.command_done(timing[0], time.perf_counter() - timing[1])

    def _connect(self, command_id: int, params: dict[str, Any]) -> None:
        if self.credentials is not None:
            self.error(command_id, codes.BAD_REQUEST, "already connected")
            return
        try:
            check_fields("connect", params)
            credentials = self.auth.authenticate(params.get("token", self.ws.state))
        except TokenError as exc:
            self.stats.failed_handshake(
                "token_expired" if exc.disconnect is codes.TOKEN_EXPIRED else "invalid_token"
            )
            self.error(command_id, exc.code, exc.message)
            self.disconnect(exc.disconnect)
            return
        except codes.HubError as exc:
            self.error(command_id, exc.code, exc.message)
            return
        self.credentials = credentials
        self.client_id = str(uuid.uuid4())
        self.client_info = ClientInfo(self.client_id, credentials.user, credentials.info)
        self.node.connected(self)
        ping = self.ws.options.ping_interval or 0
        self.reply(
            command_id, {"client": self.client_id, "user": credentials.user, "ping": int(ping)}
        )

    def _ping(self, command_id: int, params: dict[str, Any]) -> None:
        if params:
            check = next(iter(params))
            self.error(command_id, codes.BAD_REQUEST, f"unknown field {check!r} in ping params")
            return
        self.reply(command_id, {})

    def _subscribe(self, command_id: int, params: dict[str, Any]) -> None:
        self._run(command_id, self._do_subscribe(command_id, params))

    async def _do_subscribe(self, command_id: int, params: dict[str, Any]) -> None:
        check_fields("subscribe", params)
        channel = check_channel(params["channel"])
        if not self.auth.allowed(self.credentials.channels, channel):
            raise codes.HubError(
                codes.PERMISSION_DENIED, f"not allowed to subscribe to {channel!r}"
            )
        if channel in self.subscriptions:
            raise codes.HubError(codes.ALREADY_SUBSCRIBED, f"already subscribed to {channel!r}")
        limit = self.node.config.max_subscriptions
        if len(self.subscriptions) >= limit:
            raise codes.HubError(
                codes.LIMIT_EXCEEDED, f"too many subscriptions: at most {limit} per connection"
            )
        since = parse_position(params.get("since"))
        node = self.node
        options = node.config.channel_options(channel)
        sub = Subscription(self, channel, options)
        self.subscriptions[channel] = sub
        try:
            await node.subscribe(sub)
            if since is not None and options.history_size > 0:
                result = await node.broker.history(channel, since, None)
            else:
                result = await node.broker.history(channel, None, 0)
        except BaseException:
            if self.subscriptions.get(channel) is sub:
                del self.subscriptions[channel]
            node.run(self._quietly(node.unsubscribe(sub)))
            raise
        position = result.position
        recovered = since is not None and recovers(since, result)
        publications = result.publications if recovered else []
        # Unsubscribed meanwhile: the reply still goes out, the subscription does not start.
        self.reply(
            command_id, messages.subscribe_reply(self.wire, position, recovered, publications)
        )
        if self.closed or self.subscriptions.get(channel) is not sub:
            return None
        node.activate(sub, position)
        if self.closed:
            return None  # activation found a gap and closed the connection
        if options.presence or options.join_leave:
            await self._join(sub)
        return None

    async def _join(self, sub: Subscription) -> None:
        broker = self.node.broker
        sub.joined = True
        try:
            if sub.options.presence:
                await broker.add_presence(sub.channel, self.client_info)
            if sub.options.join_leave:
                await broker.publish_join(sub.channel, self.client_info)
        except BrokerUnavailable as exc:
            logger.warning(
                "fastws hub: join of %s to %s failed: %s", self.client_id, sub.channel, exc
            )

    async def _leave(self, sub: Subscription) -> None:
        node = self.node
        await node.unsubscribe(sub)
        if sub.joined:
            sub.joined = False
            if sub.options.presence:
                await node.broker.remove_presence(sub.channel, self.client_id)
            if sub.options.join_leave:
                await node.broker.publish_leave(sub.channel, self.client_info)

    async def _leave_all(self, subscriptions: list[Subscription]) -> None:
        for sub in subscriptions:
            await self._quietly(self._leave(sub))

    @staticmethod
    async def _quietly(pending: Coroutine) -> None:
        """Clean-up that must not fail loudly (the broker may be gone at shutdown)."""
        try:
            await pending
        except BrokerUnavailable:
            pass
        except Exception:
            logger.exception("fastws hub: error while leaving a channel")

    def _unsubscribe(self, command_id: int, params: dict[str, Any]) -> None:
        self._run(command_id, self._do_unsubscribe(params))

    async def _do_unsubscribe(self, params: dict[str, Any]) -> dict:
        check_fields("unsubscribe", params)
        channel = check_channel(params["channel"])
        sub = self.subscriptions.pop(channel, None)
        if sub is not None:
            await self._leave(sub)
        return {}

    def _publish(self, command_id: int, params: dict[str, Any]) -> None:
        self._run(command_id, self._do_publish(params))

    async def _do_publish(self, params: dict[str, Any]) -> dict:
        check_fields("publish", params)
        channel = check_channel(params["channel"])
        if not self.auth.allowed(self.credentials.publish, channel):
            raise codes.HubError(codes.PERMISSION_DENIED, f"not allowed to publish to {channel!r}")
        position = await self.node.publish(
            channel, encode_data(params["data"]), self.credentials.user
        )
        return {"offset": position.offset}

    def _send_to_user(self, command_id: int, params: dict[str, Any]) -> None:
        self._run(command_id, self._do_send(params))

    async def _do_send(self, params: dict[str, Any]) -> dict:
        check_fields("send", params)
        user = params["user"]
        if not isinstance(user, str) or not user:
            raise codes.HubError(codes.BAD_REQUEST, "user must be a non-empty string")
        if not self.auth.allowed(self.credentials.send, user):
            raise codes.HubError(codes.PERMISSION_DENIED, f"not allowed to send to user {user!r}")
        await self.node.broker.send_to_user(
            user, self.credentials.user, encode_data(params["data"])
        )
        return {}

    def _read_permission(self, channel: str) -> None:
        if not self.auth.allowed(self.credentials.channels, channel):
            raise codes.HubError(codes.PERMISSION_DENIED, f"not allowed to read {channel!r}")

    def _presence(self, command_id: int, params: dict[str, Any]) -> None:
        self._run(command_id, self._do_presence(params))

    async def _do_presence(self, params: dict[str, Any]) -> dict:
        check_fields("presence", params)
        channel = check_channel(params["channel"])
        self._read_permission(channel)
        return messages.presence_reply(self.wire, await self.node.presence(channel))

    def _history(self, command_id: int, params: dict[str, Any]) -> None:
        self._run(command_id, self._do_history(params))

    async def _do_history(self, params: dict[str, Any]) -> dict:
        check_fields("history", params)
        channel = check_channel(params["channel"])
        self._read_permission(channel)
        limit = params.get("limit")
        if limit is not None and (type(limit) is not int or limit < 0):
            raise codes.HubError(codes.BAD_REQUEST, "limit must be an integer >= 0")
        since = parse_position(params.get("since"))
        result = await self.node.history(channel, since, limit)
        return messages.history_reply(self.wire, result)


_HANDLERS: dict[str, Callable[[Session, int, dict[str, Any]], None]] = {
    "connect": Session._connect,
    "subscribe": Session._subscribe,
    "unsubscribe": Session._unsubscribe,
    "publish": Session._publish,
    "send": Session._send_to_user,
    "presence": Session._presence,
    "history": Session._history,
    "ping": Session._ping,
}

__all__ = ["Session", "check_fields", "parse_position"]
