"""``Client``: the connection's life (connect, reconnect with backoff, subscribe again),
the commands, and the pushes turned into callbacks and iterators.

Frames are handled in the socket's callback (a ``Listener``): replies resolve
their command at once, and everything meant for application callbacks goes
through one queue so that callbacks run one at a time in arrival order and may
themselves await hub commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import StrEnum
from typing import Any

from fastws.client import connect
from fastws.hub.client.backoff import backoff_delay
from fastws.hub.client.errors import CommandTimeout, Disconnected, command_deadline
from fastws.hub.client.inbox import Inbox
from fastws.hub.client.session import Session
from fastws.hub.client.subscription import Callback, Subscription
from fastws.hub.client.tokens import (
    SubscriptionTokenSource,
    TokenSource,
    call_token_source,
    refresh_delay,
    token_expiry,
)
from fastws.hub.client.types import History, Message, ReceivedClientInfo, ReceivedPublication
from fastws.hub.protocol import codes
from fastws.hub.protocol.codes import HubError
from fastws.hub.protocol.data import received, to_base64
from fastws.hub.protocol.types import StreamPosition
from fastws.hub.protocol.wire import JSON_SUBPROTOCOL, SUBPROTOCOLS, wire_for

logger = logging.getLogger("fastws.hub.client")

# Replies to ``connect`` that another attempt with the same settings cannot fix.
_FATAL_CONNECT_ERRORS = frozenset(
    {
        codes.BAD_REQUEST,
        codes.UNAUTHORIZED,
        codes.PERMISSION_DENIED,
        codes.NOT_FOUND,
        codes.MESSAGE_TOO_LARGE,
    }
)
# Replies to a re-subscribe that are worth another try later.
_TRANSIENT_ERRORS = frozenset({codes.LIMIT_EXCEEDED, codes.INTERNAL, codes.BROKER_UNAVAILABLE})

Token = str | Callable[[], "str | Awaitable[str] | None"] | None
TOKEN_EXPIRED_CLOSE = codes.TOKEN_EXPIRED.code


class ClientState(StrEnum):
    """Where the client is; equal to its value as a string."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    CLOSED = "closed"


class Client:
    """A client of the fastws hub; see the ``fastws.hub.client`` package docstring.

    ``token`` is a JWT string; ``get_token`` a callable (plain or async) called
    before every connection attempt, and again before the token's ``exp`` to
    replace it without reconnecting (``refresh``); a callable ``token`` is taken
    as ``get_token``. ``get_subscription_token(channel)`` is called before every
    subscribe (None: no token for that channel) and before a subscription
    token's ``exp`` (``sub_refresh``).
    ``ping_interval`` overrides the heartbeat the hub asks for; a ``ping`` that
    gets no reply within ``ping_timeout`` counts the hub as dead. Extra keyword
    arguments go to ``fastws.connect`` (``compression``, ``max_message_size``...).
    """

    def __init__(
        self,
        url: str,
        *,
        token: Token = None,
        get_token: TokenSource | None = None,
        get_subscription_token: SubscriptionTokenSource | None = None,
        subprotocol: str = JSON_SUBPROTOCOL,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        backoff_factor: float = 2.0,
        command_timeout: float = 10.0,
        ping_interval: float | None = None,
        ping_timeout: float = 10.0,
        on_connect: Callback | None = None,
        on_disconnect: Callback | None = None,
        on_message: Callback | None = None,
        rng: random.Random | None = None,
        **connect_options: Any,
    ) -> None:
        if subprotocol not in SUBPROTOCOLS:
            choices = " or ".join(repr(name) for name in SUBPROTOCOLS)
            raise ValueError(f"subprotocol must be {choices}, not {subprotocol!r}")
        if backoff_base <= 0 or backoff_max <= 0 or backoff_factor < 1:
            raise ValueError("backoff_base and backoff_max must be > 0 and backoff_factor >= 1")
        self.url = url
        if callable(token):
            token, get_token = None, token
        self.token = token
        self.get_token = get_token
        self.get_subscription_token = get_subscription_token
        self.subprotocol = subprotocol
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.backoff_factor = backoff_factor
        self.command_timeout = command_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.on_message = on_message
        self.rng = rng if rng is not None else random.Random()
        self.connect_options = connect_options
        self.state = ClientState.DISCONNECTED
        self.client_id: str | None = None
        self.user: str | None = None
        self.reconnects = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._subs: dict[str, Subscription] = {}
        self._server_subs: dict[str, Subscription] = {}  # made by the server, not by us
        self._messages = Inbox() if on_message is None else None
        self._session: Session | None = None
        self._connected = asyncio.Event()
        self._final: Exception | None = None
        self._last_id = 0
        self._run_task: asyncio.Task | None = None
        self._events: asyncio.Queue | None = None
        self._dispatch_task: asyncio.Task | None = None
        self._retry_tasks: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"<Client {self.url} {self.state} user={self.user!r}>"

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return dict(self._subs)

    @property
    def server_subscriptions(self) -> dict[str, Subscription]:
        """Subscriptions the server made for this connection (the connect hook, the token's
        ``subs``, the server API): iterate one for its publications, as any subscription.
        Their positions go with every reconnect's ``connect``, so they recover too."""
        return dict(self._server_subs)

    # -- lifecycle -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and wait for the hub to accept; the first failure raises.

        After that first success the client reconnects on its own until
        ``close()`` or a close code that forbids it (4500-4999).
        """
        if self.state == ClientState.CLOSED:
            raise Disconnected(1000, "the client is closed")
        if self._run_task is not None and not self._run_task.done():
            await self._wait_session()
            return
        self._final = None
        self._connected.clear()
        if self._dispatch_task is None:
            self._events = asyncio.Queue()
            self._dispatch_task = asyncio.create_task(self._dispatch())
        first = asyncio.get_running_loop().create_future()
        self._run_task = asyncio.create_task(self._run(first))
        try:
            await first
        except BaseException:
            if self._run_task is not None:
                self._run_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._run_task
            raise

    async def close(self) -> None:
        """Close the connection for good; iterators end and waiting commands fail."""
        if self.state == ClientState.CLOSED:
            return
        self.state = ClientState.CLOSED
        self._stop(Disconnected(1000, "the client is closed", reconnect=False))
        tasks = [t for t in (self._run_task, *self._retry_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None and session.ws is not None:
            await session.ws.close(1000, "client closed")
        for sub in [*self._subs.values(), *self._server_subs.values()]:
            sub._end()
        self._subs.clear()
        self._server_subs.clear()
        if self._messages is not None:
            self._messages.finish()
        dispatcher, self._dispatch_task = self._dispatch_task, None
        if dispatcher is not None:
            if dispatcher is asyncio.current_task():  # close() called from a callback
                dispatcher.cancel()
                return
            with contextlib.suppress(TimeoutError):  # let queued callbacks run
                await asyncio.wait_for(self._events.join(), self.command_timeout)
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def drop(self) -> None:
        """Cut the socket abruptly, as a network failure would; the client reconnects."""
        session = self._session
        if session is not None:
            session.abort()

    async def _run(self, first: asyncio.Future) -> None:
        attempt = 0
        while True:
            self.state = ClientState.CONNECTING
            try:
                session = await self._open_session()
            except Exception as exc:  # refused, handshake, token callable, hub error...
                fatal = self._is_fatal(exc)
                if not first.done():
                    self.state = ClientState.DISCONNECTED
                    self._stop(exc)  # anyone else waiting for this first connection
                    first.set_exception(exc)
                    return
                if fatal:
                    logger.warning("fastws hub client: giving up reconnecting: %s", exc)
                    self._give_up(exc)
                    return
                delay = self._backoff(attempt)
                attempt += 1
                logger.info("fastws hub client: connect failed (%s); retry in %.2f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._session = session
            self.client_id, self.user = session.client_id, session.user
            self.state = ClientState.CONNECTED
            self._connected.set()
            for sub in self._subs.values():
                self._send_subscribe(session, sub)
            self._emit(self.on_connect)
            if first.done():
                self.reconnects += 1
            else:
                first.set_result(None)
            refresher = asyncio.create_task(self._refresh_token(session))
            try:
                await self._heartbeat(session)
            finally:
                refresher.cancel()
            self._session = None
            self._connected.clear()
            self.state = ClientState.DISCONNECTED
            self.close_code, self.close_reason = session.close_code, session.close_reason
            self._emit(
                self.on_disconnect, session.close_code, session.close_reason, session.reconnect
            )
            # An expired token is fixed by a new one, when the client can ask for it.
            renewable = session.close_code == TOKEN_EXPIRED_CLOSE and self.get_token is not None
            if not session.reconnect and not renewable:
                logger.warning(
                    "fastws hub client: the hub closed with %d %r; not reconnecting",
                    session.close_code,
                    session.close_reason,
                )
                self._give_up(Disconnected(session.close_code, session.close_reason, False))
                return
            delay = self._backoff(attempt)
            attempt += 1
            logger.info(
                "fastws hub client: disconnected (%d %s); reconnecting in %.2f s",
                session.close_code,
                session.close_reason,
                delay,
            )
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        return backoff_delay(
            attempt,
            base=self.backoff_base,
            factor=self.backoff_factor,
            maximum=self.backoff_max,
            rng=self.rng,
        )

    @staticmethod
    def _is_fatal(exc: BaseException) -> bool:
        if isinstance(exc, Disconnected):
            return not exc.reconnect
        if isinstance(exc, CommandTimeout):
            return False
        return isinstance(exc, HubError) and exc.code in _FATAL_CONNECT_ERRORS

    async def _open_session(self) -> Session:
        token = self.token
        if self.get_token is not None:
            token = await call_token_source(self.get_token)
        session = Session(self, wire_for(self.subprotocol).client)
        ws = await connect(
            self.url, subprotocols=[self.subprotocol], listener=session, **self.connect_options
        )
        session.ws = ws
        try:
            if self.subprotocol != JSON_SUBPROTOCOL and ws.subprotocol != self.subprotocol:
                raise HubError(400, f"the hub did not accept the {self.subprotocol!r} subprotocol")
            params: dict[str, Any] = {"token": token} if token is not None else {}
            positions = {
                channel: {"epoch": sub.epoch, "offset": sub.offset}
                for channel, sub in self._server_subs.items()
                if sub.position is not None
            }
            if positions:
                params["subs"] = positions
            future = session.send("connect", params)
            async with command_deadline("connect", self.command_timeout):
                result = await future
        except BaseException:
            session.abort()
            raise
        result = result or {}
        session.client_id = result.get("client")
        session.user = result.get("user")
        session.ping = float(result.get("ping") or 0)
        session.token = token
        return session

    async def _heartbeat(self, session: Session) -> None:
        """Ping every interval; a ping without a reply means the hub is gone."""
        interval = self.ping_interval or session.ping
        while not session.lost.done():
            if not interval:
                await asyncio.wait([session.lost])
                return
            done, _ = await asyncio.wait([session.lost], timeout=interval)
            if done:
                return
            try:
                future = session.send("ping", {})
                async with asyncio.timeout(self.ping_timeout):
                    await future
            except TimeoutError:
                logger.warning(
                    "fastws hub client: no reply to ping within %g s; reconnecting",
                    self.ping_timeout,
                )
                session.abort()
                await asyncio.wait([session.lost])
            except HubError:
                pass  # lost (the loop ends) or an error reply (the hub is alive)

    async def _refresh_token(self, session: Session) -> None:
        """Replace the connection's token before its ``exp``, as long as the session lasts."""
        if self.get_token is None:
            return
        token = session.token
        while (exp := token_expiry(token)) is not None:
            await asyncio.sleep(refresh_delay(exp, time.time()))
            try:
                token = await call_token_source(self.get_token)
                async with command_deadline("refresh", self.command_timeout):
                    await session.send("refresh", {"token": token})
            except HubError as exc:
                if session.lost.done():
                    return
                logger.warning("fastws hub client: token refresh failed: %s", exc)
                await asyncio.sleep(self._backoff(0))
                token = session.token  # try again a little later
            except Exception:
                logger.exception("fastws hub client: get_token failed")
                await asyncio.sleep(self._backoff(0))
                token = session.token
            else:
                session.token = token

    def _stop(self, error: Exception) -> None:
        self._final = error
        self._connected.set()  # wake commands waiting for a connection; they will see _final

    def _give_up(self, error: HubError) -> None:
        self.state = ClientState.DISCONNECTED
        self._stop(error)
        for sub in list(self._subs.values()):
            sub._end(error)
        self._subs.clear()
        if self._messages is not None:
            self._messages.finish(error)

    # -- commands -----------------------------------------------------------------------------

    async def _wait_session(self) -> Session:
        while True:
            if self._final is not None:
                raise self._final
            session = self._session
            if session is not None and not session.lost.done():
                return session
            if self._run_task is None or self._run_task.done():
                raise Disconnected(1000, "not connected: call connect() first")
            await self._connected.wait()
            if self._final is None and self._session is None:
                await asyncio.sleep(0)  # the event is being cleared by a reconnect

    async def call(self, method: str, params: dict) -> Any:
        """Send any command and return its ``result``; waits through a reconnect."""
        async with command_deadline(method, self.command_timeout):
            session = await self._wait_session()
            return await session.send(method, params)

    async def subscribe(
        self,
        channel: str,
        on_publication: Callback | None = None,
        *,
        on_join: Callback | None = None,
        on_leave: Callback | None = None,
        on_resync: Callback | None = None,
    ) -> Subscription:
        """Subscribe to ``channel``; the subscription is renewed on every reconnect.

        ``on_resync(sub)`` runs when, after a reconnect or an ``unsubscribe`` push
        asking to subscribe again, the hub could not replay the publications missed
        (``sub.recovered`` is then False).
        """
        if channel in self._subs:
            raise HubError(409, f"already subscribed to {channel!r}")
        session = await self._wait_session()
        sub = Subscription(self, channel, on_publication, on_join, on_leave, on_resync)
        self._subs[channel] = sub
        self._send_subscribe(session, sub)
        try:
            async with command_deadline("subscribe", self.command_timeout):
                await asyncio.shield(sub._ready)
        except BaseException:
            if self._subs.get(channel) is sub:
                del self._subs[channel]
                sub._end()
            raise
        return sub

    def _send_subscribe(self, session: Session, sub: Subscription) -> None:
        if self.get_subscription_token is None:
            self._send_subscribe_with(session, sub, None)
            return
        task = asyncio.create_task(self._subscribe_with_token(session, sub))
        self._retry_tasks.add(task)
        task.add_done_callback(self._retry_tasks.discard)

    async def _subscribe_with_token(self, session: Session, sub: Subscription) -> None:
        try:
            token = await call_token_source(self.get_subscription_token, sub.channel)
        except Exception as exc:
            logger.warning("fastws hub client: no subscription token for %r: %s", sub.channel, exc)
            if self._subs.get(sub.channel) is sub and not sub._ready.done():
                del self._subs[sub.channel]
                sub._end(exc)
            return
        if session.lost.done() or self._subs.get(sub.channel) is not sub:
            return
        self._send_subscribe_with(session, sub, token)

    def _send_subscribe_with(self, session: Session, sub: Subscription, token: str | None) -> None:
        params = sub._subscribe_params()
        if token is not None:
            params["token"] = token
        since_sent = "since" in params

        def on_reply(result: Any, error: HubError | None) -> None:
            if self._subs.get(sub.channel) is not sub:
                if error is None and session is self._session:  # given up meanwhile
                    with contextlib.suppress(HubError):
                        session.send("unsubscribe", {"channel": sub.channel}, _ignore_reply)
                return
            if error is None:
                sub._subscribed(result or {}, since_sent)
                if not sub._ready.done():
                    sub._ready.set_result(None)
                if token_expiry(token) is not None:
                    sub._refresh_task(self._refresh_subscription(session, sub, token))
            else:
                self._subscribe_failed(session, sub, error)

        try:
            session.send("subscribe", params, on_reply)
        except HubError:
            sub._buffer = None  # lost already: the next connection subscribes again

    def _subscribe_failed(self, session: Session, sub: Subscription, error: HubError) -> None:
        sub._buffer = None
        if isinstance(error, Disconnected):
            return  # the next connection subscribes again
        if not sub._ready.done():  # the first subscribe: tell the caller
            del self._subs[sub.channel]
            sub._end(error)
            return
        if error.code == codes.UNRECOVERABLE_POSITION:
            sub._forget_position = True
            self._send_subscribe(session, sub)
        elif error.code in _TRANSIENT_ERRORS:
            task = asyncio.create_task(self._resubscribe_later(session, sub))
            self._retry_tasks.add(task)
            task.add_done_callback(self._retry_tasks.discard)
        else:
            logger.warning(
                "fastws hub client: cannot subscribe again to %r: %s", sub.channel, error
            )
            del self._subs[sub.channel]
            sub._end(error)

    async def _refresh_subscription(self, session: Session, sub: Subscription, token: str) -> None:
        """Replace a subscription token before its ``exp`` while the subscription lasts."""
        while (exp := token_expiry(token)) is not None:
            await asyncio.sleep(refresh_delay(exp, time.time()))
            if session.lost.done() or self._subs.get(sub.channel) is not sub:
                return
            try:
                token = await call_token_source(self.get_subscription_token, sub.channel)
                async with command_deadline("sub_refresh", self.command_timeout):
                    await session.send("sub_refresh", {"channel": sub.channel, "token": token})
            except Exception as exc:
                logger.warning(
                    "fastws hub client: refresh of the %r token failed: %s", sub.channel, exc
                )
                return  # the hub's unsubscribe push, if it comes, subscribes again

    async def _resubscribe_later(self, session: Session, sub: Subscription) -> None:
        for attempt in range(1000):
            await asyncio.sleep(self._backoff(attempt))
            if session.lost.done() or self._subs.get(sub.channel) is not sub:
                return
            if sub._buffer is None:
                self._send_subscribe(session, sub)
                return

    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving ``channel``; its iterator ends."""
        sub = self._subs.pop(channel, None)
        if sub is None:
            return
        sub._end()
        session = self._session
        if session is not None and not session.lost.done():
            with contextlib.suppress(Disconnected):  # the next connection will not subscribe again
                async with command_deadline("unsubscribe", self.command_timeout):
                    await session.send("unsubscribe", {"channel": channel})

    async def publish(self, channel: str, data: Any) -> int:
        """Publish ``data`` to ``channel``; returns its offset in the channel's stream.

        ``bytes`` are binary data, anything else must be representable in JSON."""
        result = await self.call("publish", {"channel": channel, **self._data(data)})
        return (result or {}).get("offset")

    async def send(self, user: str, data: Any) -> None:
        """Send a private message to every connection of ``user``."""
        await self.call("send", {"user": user, **self._data(data)})

    def _data(self, data: Any) -> dict[str, Any]:
        """The data field of a command: JSON has no bytes, so they travel as ``b64data``."""
        if self.subprotocol == JSON_SUBPROTOCOL and isinstance(data, (bytes, bytearray)):
            return {"b64data": to_base64(data)}
        return {"data": data}

    async def presence(self, channel: str) -> dict[str, ReceivedClientInfo]:
        """Who is in ``channel``: client id -> ReceivedClientInfo."""
        result = await self.call("presence", {"channel": channel})
        clients = (result or {}).get("clients") or {}
        return {cid: ReceivedClientInfo.from_wire(cid, item) for cid, item in clients.items()}

    async def history(
        self,
        channel: str,
        since: StreamPosition | dict | None = None,
        limit: int | None = None,
        reverse: bool = False,
    ) -> History:
        """Publications kept for ``channel``, oldest first (after ``since`` when given); with
        ``reverse``, newest first (before ``since`` when given)."""
        params: dict[str, Any] = {"channel": channel}
        if since is not None:
            params["since"] = since.to_wire() if isinstance(since, StreamPosition) else since
        if limit is not None:
            params["limit"] = limit
        if reverse:
            params["reverse"] = True
        result = await self.call("history", params) or {}
        pubs = [ReceivedPublication.from_wire(channel, p) for p in result.get("publications") or ()]
        return History(result.get("offset"), result.get("epoch"), pubs)

    async def rpc(self, method: str, data: Any = None) -> Any:
        """The rpc hook's answer to ``method`` (HubError 501 when the hub has none)."""
        params: dict[str, Any] = {"method": method}
        if data is not None:
            params["data"] = data
        result = await self.call("rpc", params)
        return (result or {}).get("data")

    async def ping(self) -> None:
        """Round trip to the hub."""
        await self.call("ping", {})

    def messages(self) -> AsyncIterator[Message]:
        """Private messages (when no ``on_message`` callback was given)."""
        if self._messages is None:
            raise RuntimeError("messages go to on_message; there is no iterator")
        return self._messages

    # -- frames and pushes ------------------------------------------------------------------

    def _next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def _on_push(self, session: Session, message: dict) -> None:
        kind = message.get("push")
        if kind == "pub":
            channel = message.get("channel")
            sub = self._subs.get(channel) or self._server_subs.get(channel)
            if sub is not None and sub.active:
                sub._receive(ReceivedPublication.from_wire(sub.channel, message))
        elif kind == "message":
            msg = Message(message.get("from"), received(message))
            if self.on_message is not None:
                self._emit(self.on_message, msg)
            elif self._messages is not None:
                self._messages.put(msg)
        elif kind in ("join", "leave"):
            sub = self._subs.get(message.get("channel"))
            info = message.get("info") or {}
            if sub is not None:
                callback = sub.on_join if kind == "join" else sub.on_leave
                self._emit(callback, ReceivedClientInfo.from_wire(info.get("client"), info))
        elif kind == "unsubscribe":
            server_sub = self._server_subs.pop(message.get("channel"), None)
            if server_sub is not None:
                server_sub._end()
            else:
                self._unsubscribed_by_hub(session, message)
        elif kind == "disconnect":
            session.disconnect_push = message
        elif kind == "subscribe":
            self._server_subscribed(message)
        else:
            logger.debug("fastws hub client: ignoring push %r", kind)

    def _unsubscribed_by_hub(self, session: Session, message: dict) -> None:
        """The hub ended one subscription: subscribe again from its position when the
        code says so (``recovered`` then tells what was kept; an expired token needs
        ``get_subscription_token``), else end it."""
        sub = self._subs.get(message.get("channel"))
        if sub is None or session is not self._session:
            return
        code, reason = message.get("code"), message.get("reason") or "unsubscribed"
        if not isinstance(code, int):
            code = 0
        if code == codes.SUBSCRIPTION_EXPIRED.code and self.get_subscription_token is None:
            code = codes.PERMISSION_DENIED
        elif codes.Unsubscribe(code, reason).resubscribe:
            if sub._buffer is None:  # not already subscribing
                self._send_subscribe(session, sub)
            return
        del self._subs[sub.channel]
        sub._end(HubError(code, reason))

    def _server_subscribed(self, push: dict) -> None:
        """A ``subscribe`` push: the server subscribed us (again, after a reconnect)."""
        channel = push.get("channel")
        sub = self._server_subs.get(channel)
        since_sent = sub is not None and sub.position is not None
        if sub is None:
            sub = Subscription(self, channel, None, None, None, None)
            self._server_subs[channel] = sub
        sub._subscribed(push, since_sent)

    def _emit_publication(self, sub: Subscription, pub: ReceivedPublication) -> None:
        if sub.on_publication is not None:
            self._emit(sub.on_publication, pub)
        elif sub._inbox is not None:
            sub._inbox.put(pub)

    def _emit_resync(self, sub: Subscription) -> None:
        self._emit(sub.on_resync, sub)

    def _emit(self, callback: Callback | None, *args: Any) -> None:
        if callback is not None and self._events is not None:
            self._events.put_nowait((callback, args))

    async def _dispatch(self) -> None:
        """Run callbacks one at a time, in the order their events arrived."""
        events = self._events
        while True:
            callback, args = await events.get()
            try:
                result = callback(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("fastws hub client: error in callback %r", callback)
            finally:
                events.task_done()


def _ignore_reply(result: Any, error: HubError | None) -> None:
    pass


__all__ = ["Client", "ClientState", "Token"]
