"""The hub client: one logical connection to a fastws hub that outlives the network.

    async with Client("ws://127.0.0.1:8080/connection", token=get_token) as client:
        sub = await client.subscribe("chat:lobby")
        await sub.publish({"text": "hi"})
        async for pub in sub:
            print(pub.offset, pub.data)

When the socket drops, the client reconnects with exponential backoff and full
jitter, asks for a fresh token (when ``token`` is a callable), and subscribes
again to every channel from the last position it saw. The hub then replays what
was missed (``recovered=True``) or says it cannot (``on_resync``). Publications
reach the application once each and in offset order across all of that.

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
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from fastws.client import connect
from fastws.codec import OP_BINARY, OP_TEXT
from fastws.errors import ConnectionClosed
from fastws.hub.protocol import codes
from fastws.hub.protocol.codes import HubError
from fastws.protocol import Listener, WebSocket

logger = logging.getLogger("fastws.hub.client")

JSON = "fastws.json"
MSGPACK = "fastws.msgpack"

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
Callback = Callable[..., Any]


class CommandTimeout(HubError, TimeoutError):
    """No reply within the command timeout (code 408)."""

    def __init__(self, method: str, timeout: float) -> None:
        super().__init__(408, f"no reply to {method!r} within {timeout:g} s")


class Disconnected(HubError):
    """The connection ended before the command could complete; ``code`` is the close code."""

    def __init__(self, code: int, reason: str, reconnect: bool = True) -> None:
        super().__init__(code, reason or "disconnected")
        self.reconnect = reconnect


def may_reconnect(code: int) -> bool:
    """Close codes 4500-4999 mean "do not come back without a change"; all others may retry."""
    return not 4500 <= code <= 4999


def backoff_delay(
    attempt: int,
    *,
    base: float = 0.5,
    factor: float = 2.0,
    maximum: float = 20.0,
    rng: random.Random | Any = random,
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0 for the first): full jitter.

    A uniform pick in ``[0, min(maximum, base * factor**attempt)]`` spreads a
    crowd of clients that lost the same server over the whole window instead of
    letting them come back in waves.
    """
    try:
        cap = min(maximum, base * factor**attempt)
    except OverflowError:
        cap = maximum
    return rng.uniform(0.0, cap)


class StreamPosition(NamedTuple):
    """Where a channel's stream is: the epoch names the stream, the offset counts in it."""

    epoch: Any
    offset: int

    def to_wire(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class Publication:
    """A message published in a channel; ``recovered`` when replayed after a reconnect."""

    channel: str
    offset: int
    data: Any
    user: str | None = None
    recovered: bool = False


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """One connection present in a channel (presence replies, join and leave pushes)."""

    client: str
    user: str
    info: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    """A private message sent to this client's user by ``user``."""

    user: str
    data: Any


@dataclass(frozen=True, slots=True)
class History:
    """A slice of a channel's history and the stream position it was taken at."""

    epoch: Any
    offset: int
    publications: list[Publication]


def _publication(channel: str, item: dict, recovered: bool = False) -> Publication:
    info = item.get("info") or {}
    return Publication(channel, item.get("offset"), item.get("data"), info.get("user"), recovered)


def _client_info(client: str, item: dict) -> ClientInfo:
    return ClientInfo(client, item.get("user"), item.get("info") or {})


class _Inbox:
    """An unbounded queue read with ``async for``; ``finish`` ends it (or makes it raise)."""

    def __init__(self) -> None:
        self._items: deque = deque()
        self._waiter: asyncio.Future | None = None
        self._ended = False
        self._error: BaseException | None = None

    def put(self, item: Any) -> None:
        self._items.append(item)
        self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        if not self._ended:
            self._ended, self._error = True, error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __len__(self) -> int:
        return len(self._items)

    def __aiter__(self) -> _Inbox:
        return self

    async def __anext__(self) -> Any:
        while not self._items:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class Subscription:
    """A channel subscription that survives reconnects.

    Publications go to ``on_publication`` when given, otherwise they queue for
    ``async for pub in sub``. ``position`` is the last offset delivered, sent as
    ``since`` when subscribing again after a reconnect.
    """

    def __init__(
        self,
        client: Client,
        channel: str,
        on_publication: Callback | None,
        on_join: Callback | None,
        on_leave: Callback | None,
        on_resync: Callback | None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.on_publication = on_publication
        self.on_join = on_join
        self.on_leave = on_leave
        self.on_resync = on_resync
        self.epoch: Any = None
        self.offset: int | None = None
        self.recovered: bool | None = None  # outcome of the last subscribe from a position
        self.resyncs = 0  # times the hub could not replay what was missed
        self.active = True
        self._inbox = _Inbox() if on_publication is None else None
        self._buffer: list[Publication] | None = None  # pushes during a subscribe in flight
        self._forget_position = False
        self._ready: asyncio.Future = asyncio.get_running_loop().create_future()

    @property
    def position(self) -> StreamPosition | None:
        if self.epoch is None or self.offset is None:
            return None
        return StreamPosition(self.epoch, self.offset)

    def __repr__(self) -> str:
        return f"<Subscription {self.channel!r} at {self.position}>"

    def __aiter__(self) -> AsyncIterator[Publication]:
        if self._inbox is None:
            raise RuntimeError(f"{self.channel!r} delivers to on_publication; it has no iterator")
        return self._inbox

    async def publish(self, data: Any) -> int:
        return await self.client.publish(self.channel, data)

    async def presence(self) -> dict[str, ClientInfo]:
        return await self.client.presence(self.channel)

    async def history(self, since: StreamPosition | None = None, limit: int | None = None) -> History:
        return await self.client.history(self.channel, since=since, limit=limit)

    async def unsubscribe(self) -> None:
        await self.client.unsubscribe(self.channel)

    # -- driven by the client, inside the socket callback -------------------------

    def _subscribe_params(self) -> dict:
        params: dict[str, Any] = {"channel": self.channel}
        position = self.position
        if position is not None and not self._forget_position:
            params["since"] = position.to_wire()
        self._buffer = []
        return params

    def _receive(self, pub: Publication) -> None:
        if self._buffer is not None:
            self._buffer.append(pub)
        else:
            self._deliver(pub)

    def _deliver(self, pub: Publication) -> None:
        if pub.offset is not None:
            if self.offset is not None and pub.offset <= self.offset:
                return  # already delivered (replay and live push overlap)
            self.offset = pub.offset
        self.client._emit_publication(self, pub)

    def _subscribed(self, result: dict, since_sent: bool) -> None:
        """Apply a subscribe reply: replay, then the pushes that came while it was in flight."""
        had_position = self.epoch is not None
        recovered = bool(result.get("recovered")) and since_sent
        top = result.get("offset")
        if not recovered:
            self.offset = None  # a new stream, or a gap we cannot fill: start from here
        self.epoch = result.get("epoch")
        self._forget_position = False
        replayed = [_publication(self.channel, p, recovered) for p in result.get("publications") or ()]
        pending = replayed + (self._buffer or [])
        self._buffer = None
        pending.sort(key=lambda p: -1 if p.offset is None else p.offset)
        if had_position:
            self.recovered = recovered
            if not recovered:
                self.resyncs += 1
                self.client._emit_resync(self)
        for pub in pending:
            self._deliver(pub)
        if isinstance(top, int) and (self.offset is None or top > self.offset):
            self.offset = top

    def _end(self, error: BaseException | None = None) -> None:
        self.active = False
        self._buffer = None
        if not self._ready.done():
            self._ready.set_exception(error or Disconnected(1000, "unsubscribed"))
            self._ready.exception()  # the caller may be gone; do not warn about it
        if self._inbox is not None:
            self._inbox.finish(error)


class _Pending(NamedTuple):
    method: str
    future: asyncio.Future | None
    on_reply: Callable[[Any, HubError | None], None] | None


class _Session(Listener):
    """One WebSocket connection to the hub, from the upgrade until it closes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ws: WebSocket | None = None
        self.pending: dict[int, _Pending] = {}
        self.lost: asyncio.Future = asyncio.get_running_loop().create_future()
        self.close_code = 1006
        self.close_reason = ""
        self.disconnect_push: dict | None = None
        self.client_id: str | None = None
        self.user: str | None = None
        self.ping: float = 0.0

    # -- Listener callbacks ----------------------------------------------------------

    def on_message(self, ws: WebSocket, opcode: int, payload: memoryview) -> None:
        try:
            message = self.client._decode(opcode, payload)
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
        opcode, frame = self.client._encode({"id": command_id, "method": method, "params": params})
        future = None
        if on_reply is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(self._forget_if_cancelled(command_id))
        try:
            ws.send_frame(opcode, frame)
        except ConnectionClosed as exc:  # closing: the close frame is already out
            if future is not None:
                future.cancel()
            raise Disconnected(exc.code, exc.reason or "closing") from None
        self.pending[command_id] = _Pending(method, future, on_reply)
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
    def _settle(entry: _Pending, result: Any, error: HubError | None) -> None:
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


CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
CLOSED = "closed"


class Client:
    """A client of the fastws hub; see the module docstring.

    ``token`` is a JWT string, or a callable (plain or async) called before
    every connection attempt so that reconnects can use a fresh token.
    ``ping_interval`` overrides the heartbeat the hub asks for; a ``ping`` that
    gets no reply within ``ping_timeout`` counts the hub as dead. Extra keyword
    arguments go to ``fastws.connect`` (``compression``, ``max_message_size``...).
    """

    def __init__(
        self,
        url: str,
        *,
        token: Token = None,
        subprotocol: str = JSON,
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
        if subprotocol not in (JSON, MSGPACK):
            raise ValueError(f"subprotocol must be {JSON!r} or {MSGPACK!r}, not {subprotocol!r}")
        if backoff_base <= 0 or backoff_max <= 0 or backoff_factor < 1:
            raise ValueError("backoff_base and backoff_max must be > 0 and backoff_factor >= 1")
        self.url = url
        self.token = token
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
        self.state = DISCONNECTED
        self.client_id: str | None = None
        self.user: str | None = None
        self.reconnects = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._subs: dict[str, Subscription] = {}
        self._messages = _Inbox() if on_message is None else None
        self._session: _Session | None = None
        self._connected = asyncio.Event()
        self._final: Exception | None = None
        self._last_id = 0
        self._run_task: asyncio.Task | None = None
        self._events: asyncio.Queue | None = None
        self._dispatch_task: asyncio.Task | None = None
        self._retry_tasks: set[asyncio.Task] = set()
        if subprotocol == MSGPACK:
            import msgpack

            self._packb = msgpack.packb
            self._unpackb = msgpack.unpackb

    def __repr__(self) -> str:
        return f"<Client {self.url} {self.state} user={self.user!r}>"

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return dict(self._subs)

    # -- lifecycle -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and wait for the hub to accept; the first failure raises.

        After that first success the client reconnects on its own until
        ``close()`` or a close code that forbids it (4500-4999).
        """
        if self.state == CLOSED:
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
        if self.state == CLOSED:
            return
        self.state = CLOSED
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
        for sub in list(self._subs.values()):
            sub._end()
        self._subs.clear()
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
            self.state = CONNECTING
            try:
                session = await self._open_session()
            except Exception as exc:  # refused, handshake, token callable, hub error...
                fatal = self._is_fatal(exc)
                if not first.done():
                    self.state = DISCONNECTED
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
            self.state = CONNECTED
            self._connected.set()
            for sub in self._subs.values():
                self._send_subscribe(session, sub)
            self._emit(self.on_connect)
            if first.done():
                self.reconnects += 1
            else:
                first.set_result(None)
            await self._heartbeat(session)
            self._session = None
            self._connected.clear()
            self.state = DISCONNECTED
            self.close_code, self.close_reason = session.close_code, session.close_reason
            self._emit(self.on_disconnect, session.close_code, session.close_reason, session.reconnect)
            if not session.reconnect:
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

    async def _open_session(self) -> _Session:
        token = self.token
        if callable(token):
            token = token()
            if inspect.isawaitable(token):
                token = await token
        session = _Session(self)
        ws = await connect(
            self.url, subprotocols=[self.subprotocol], listener=session, **self.connect_options
        )
        session.ws = ws
        try:
            if self.subprotocol == MSGPACK and ws.subprotocol != MSGPACK:
                raise HubError(400, f"the hub did not accept the {MSGPACK!r} subprotocol")
            params = {"token": token} if token is not None else {}
            future = session.send("connect", params)
            try:
                async with asyncio.timeout(self.command_timeout):
                    result = await future
            except TimeoutError:
                raise CommandTimeout("connect", self.command_timeout) from None
        except BaseException:
            session.abort()
            raise
        result = result or {}
        session.client_id = result.get("client")
        session.user = result.get("user")
        session.ping = float(result.get("ping") or 0)
        return session

    async def _heartbeat(self, session: _Session) -> None:
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

    def _stop(self, error: Exception) -> None:
        self._final = error
        self._connected.set()  # wake commands waiting for a connection; they will see _final

    def _give_up(self, error: HubError) -> None:
        self.state = DISCONNECTED
        self._stop(error)
        for sub in list(self._subs.values()):
            sub._end(error)
        self._subs.clear()
        if self._messages is not None:
            self._messages.finish(error)

    # -- commands -----------------------------------------------------------------------------

    async def _wait_session(self) -> _Session:
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
        try:
            async with asyncio.timeout(self.command_timeout):
                session = await self._wait_session()
                return await session.send(method, params)
        except TimeoutError as exc:
            if isinstance(exc, HubError):
                raise
            raise CommandTimeout(method, self.command_timeout) from None

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

        ``on_resync(sub)`` runs when, after a reconnect, the hub could not replay
        the publications missed while away (``sub.recovered`` is then False).
        """
        if channel in self._subs:
            raise HubError(409, f"already subscribed to {channel!r}")
        session = await self._wait_session()
        sub = Subscription(self, channel, on_publication, on_join, on_leave, on_resync)
        self._subs[channel] = sub
        self._send_subscribe(session, sub)
        try:
            async with asyncio.timeout(self.command_timeout):
                await asyncio.shield(sub._ready)
        except BaseException as exc:
            if self._subs.get(channel) is sub:
                del self._subs[channel]
                sub._end()
            if isinstance(exc, TimeoutError) and not isinstance(exc, HubError):
                raise CommandTimeout("subscribe", self.command_timeout) from None
            raise
        return sub

    def _send_subscribe(self, session: _Session, sub: Subscription) -> None:
        params = sub._subscribe_params()
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
            else:
                self._subscribe_failed(session, sub, error)

        try:
            session.send("subscribe", params, on_reply)
        except HubError:
            sub._buffer = None  # lost already: the next connection subscribes again

    def _subscribe_failed(self, session: _Session, sub: Subscription, error: HubError) -> None:
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
            logger.warning("fastws hub client: cannot subscribe again to %r: %s", sub.channel, error)
            del self._subs[sub.channel]
            sub._end(error)

    async def _resubscribe_later(self, session: _Session, sub: Subscription) -> None:
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
            try:
                async with asyncio.timeout(self.command_timeout):
                    await session.send("unsubscribe", {"channel": channel})
            except TimeoutError as exc:
                if isinstance(exc, HubError):
                    raise
                raise CommandTimeout("unsubscribe", self.command_timeout) from None
            except Disconnected:
                pass  # the next connection will not subscribe again

    async def publish(self, channel: str, data: Any) -> int:
        """Publish ``data`` to ``channel``; returns its offset in the channel's stream."""
        result = await self.call("publish", {"channel": channel, "data": data})
        return (result or {}).get("offset")

    async def send(self, user: str, data: Any) -> None:
        """Send a private message to every connection of ``user``."""
        await self.call("send", {"user": user, "data": data})

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """Who is in ``channel``: client id -> ClientInfo."""
        result = await self.call("presence", {"channel": channel})
        clients = (result or {}).get("clients") or {}
        return {cid: _client_info(cid, item) for cid, item in clients.items()}

    async def history(
        self, channel: str, since: StreamPosition | dict | None = None, limit: int | None = None
    ) -> History:
        """Publications kept for ``channel`` (after ``since`` when given)."""
        params: dict[str, Any] = {"channel": channel}
        if since is not None:
            params["since"] = since.to_wire() if isinstance(since, StreamPosition) else since
        if limit is not None:
            params["limit"] = limit
        result = await self.call("history", params) or {}
        pubs = [_publication(channel, p) for p in result.get("publications") or ()]
        return History(result.get("epoch"), result.get("offset"), pubs)

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

    def _encode(self, message: dict) -> tuple[int, bytes]:
        if self.subprotocol == MSGPACK:
            return OP_BINARY, self._packb(message)
        return OP_TEXT, orjson.dumps(message)

    def _decode(self, opcode: int, payload: memoryview) -> Any:
        if opcode == OP_BINARY and self.subprotocol == MSGPACK:
            return self._unpackb(payload)
        return orjson.loads(payload)

    def _on_push(self, session: _Session, message: dict) -> None:
        kind = message.get("push")
        if kind == "pub":
            sub = self._subs.get(message.get("channel"))
            if sub is not None and sub.active:
                sub._receive(_publication(sub.channel, message))
        elif kind == "message":
            msg = Message(message.get("from"), message.get("data"))
            if self.on_message is not None:
                self._emit(self.on_message, msg)
            elif self._messages is not None:
                self._messages.put(msg)
        elif kind in ("join", "leave"):
            sub = self._subs.get(message.get("channel"))
            info = message.get("info") or {}
            if sub is not None:
                callback = sub.on_join if kind == "join" else sub.on_leave
                self._emit(callback, _client_info(info.get("client"), info))
        elif kind == "disconnect":
            session.disconnect_push = message
        else:
            logger.debug("fastws hub client: ignoring push %r", kind)

    def _emit_publication(self, sub: Subscription, pub: Publication) -> None:
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


__all__ = [
    "CLOSED",
    "CONNECTED",
    "CONNECTING",
    "DISCONNECTED",
    "JSON",
    "MSGPACK",
    "Client",
    "ClientInfo",
    "CommandTimeout",
    "Disconnected",
    "History",
    "HubError",
    "Message",
    "Publication",
    "StreamPosition",
    "Subscription",
    "backoff_delay",
    "may_reconnect",
]
