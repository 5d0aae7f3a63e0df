"""The hub node: the registry of this process's clients and the fan-out to them.

The node is the broker's sink. A publication reaching it is encoded once per
wire encoding in use on the channel (JSON, MessagePack, Protobuf) and framed
once, and the same frame is queued on every local subscriber of its channel,
in the order the broker delivers: so each subscriber sees a channel's
publications in offset order.

Subscribing from a position must lose nothing and repeat nothing even when the
broker is remote. So a new subscription starts *buffering*: it is registered,
the node's interest in the channel reaches the broker, history is read, the
reply carries what was missed, and only then are the buffered publications
released, skipping offsets the reply already held. The broker's deliveries to
this node may lag behind the history read (a busy node has not yet taken what
the broker already sent): then the publications up to the reply's position are
still to come here, and the subscription goes on buffering until the channel's
stream reaches that position, so that the reply's publications are not pushed
again. The subscribe command
(``commands/subscriptions.py``) drives that sequence; the node keeps the
per-channel state it needs.

The server API reaches connections on every node through control messages
(``control``): each node acts on those of its own connections that a message
names. Every node also announces what it holds (connections, channels with
their subscriber counts) every ``node_ttl / 3`` seconds, each announcement
living ``node_ttl``, which is what the API's cluster-wide ``info`` and
``channels`` read.

Commands that call the broker run through ``run``: against the in-memory
broker (``inline``) they complete at once without a task; otherwise each is a
task, and replies carry ids, so their order may differ from the commands'.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
import uuid
from collections.abc import Callable, Coroutine, Generator, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

import fastws
from fastws.hub import messages
from fastws.hub.auth import Authenticator
from fastws.hub.broker import (
    Broker,
    ClientInfo,
    HistoryResult,
    Publication,
    PublishOptions,
    StreamPosition,
)
from fastws.hub.config import HubConfig
from fastws.hub.hooks import Hooks
from fastws.hub.metrics import HubStats
from fastws.hub.namespaces import Namespace, namespace_name
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import WIRES, Wire

if TYPE_CHECKING:
    from fastws.hub.session import Session

logger = logging.getLogger("fastws.hub")

TICK = 1.0  # seconds between checks of connect deadlines and token expiry
FLUSH_TIMEOUT = 1.0  # seconds commands in flight get to reach the broker at close


class Subscription:
    """One session's subscription to one channel; ``buffer`` is a list while it subscribes.

    ``client_info`` is what presence, join and leave show of the connection in this
    channel (a subscription token's ``info`` replaces the connection's);
    ``expires_at`` the expiry of the subscription token, if any."""

    __slots__ = ("session", "channel", "options", "client_info", "expires_at", "buffer", "joined")

    def __init__(
        self,
        session: Session,
        channel: str,
        options: Namespace,
        client_info: ClientInfo,
        expires_at: float | None = None,
    ) -> None:
        self.session = session
        self.channel = channel
        self.options = options
        self.client_info = client_info
        self.expires_at = expires_at
        self.buffer: list[Publication] | None = []
        self.joined = False


class ChannelState:
    """This node's local subscribers of a channel and the last position it delivered;
    ``catching_up`` the subscriptions answered at a position the channel's stream here
    has not reached yet (with that position)."""

    __slots__ = ("subscribers", "epoch", "offset", "ready", "catching_up")

    def __init__(self) -> None:
        self.subscribers: dict[Session, Subscription] = {}
        self.epoch: str | None = None
        self.offset = 0
        self.catching_up: dict[Subscription, StreamPosition] = {}
        self.ready: asyncio.Future | None = None  # the broker subscription, while in flight


class _Continue:
    """Goes on driving a coroutine that already ran up to its first suspension."""

    __slots__ = ("coro", "pending")

    def __init__(self, coro: Coroutine, pending: Any) -> None:
        self.coro = coro
        self.pending = pending

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self.coro, self.pending
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _resume(coro: Coroutine, pending: Any) -> Any:
    return await _Continue(coro, pending)


class Node:
    """Clients, users and channels of this process, and the broker's sink."""

    def __init__(
        self, config: HubConfig, broker: Broker, auth: Authenticator, hooks: Hooks | None = None
    ) -> None:
        self.id = uuid.uuid4().hex
        self.config = config
        self.broker = broker
        self.auth = auth
        self.hooks = hooks
        self.started_at = time.time()
        self.stats = HubStats()
        self.sessions: dict[str, Session] = {}  # connected, by client id
        self.users: dict[str, set[Session]] = {}
        self.channels: dict[str, ChannelState] = {}
        self.waiting: dict[Session, float] = {}  # not connected yet -> deadline
        # (expiry, client id, channel or "" for the connection's own token)
        self._expiries: list[tuple[float, str, str]] = []
        self._publish_options: dict[Namespace, PublishOptions] = {}
        self._tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._presence_timer: asyncio.TimerHandle | None = None
        self._announce_timer: asyncio.TimerHandle | None = None

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.broker.start(self)
        self._timer = self._loop.call_later(TICK, self._tick)
        self._announce_timer = self._loop.call_later(0, self._announce_now)
        if self.broker.presence_expires:
            self._presence_timer = self._loop.call_later(
                self.broker.presence_ttl / 3, self._refresh_presence
            )

    def disconnect_all(self, disconnect: codes.Disconnect) -> None:
        """Tell every client why it is about to be closed (before the server closes it)."""
        sessions = list(self.sessions.values()) + list(self.waiting)
        self.fan_out(sessions, lambda _: messages.disconnect_push(disconnect), "disconnect")

    async def close(self) -> None:
        """Stop the timers, let commands in flight reach the broker (bounded), close it."""
        for timer in (self._timer, self._presence_timer, self._announce_timer):
            if timer is not None:
                timer.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=FLUSH_TIMEOUT)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.broker.close()
        if self.hooks is not None:
            self.hooks.close()

    def run(self, coro: Coroutine) -> None:
        """Run a command's coroutine, at once when the broker never suspends, else as a task.

        The coroutine must handle its own errors.
        """
        if self.broker.inline:
            try:
                pending = coro.send(None)
            except StopIteration:
                return
            except Exception:
                logger.exception("fastws hub: error in a command")
                return
            task = self._loop.create_task(_resume(coro, pending))
        else:
            task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- clients ---------------------------------------------------------------------

    def welcome(self, session: Session) -> None:
        """A WebSocket opened: it has connect_timeout seconds to send connect."""
        self.waiting[session] = self._loop.time() + self.config.connect_timeout

    def connected(self, session: Session) -> None:
        self.waiting.pop(session, None)
        self.sessions[session.client_id] = session
        self.users.setdefault(session.credentials.user, set()).add(session)
        self.expires(session, session.credentials.expires_at)

    def expires(self, session: Session, at: float | None, channel: str = "") -> None:
        """Check the token of ``session`` (or of its subscription to ``channel``) at ``at``.

        Entries are not removed when a token is refreshed: the tick compares each one
        with the expiry the connection or subscription holds by then."""
        if at is None:
            return
        expiries = self._expiries
        if len(expiries) > 4 * len(self.sessions) + 1024:
            # Entries of gone clients are dropped lazily; past a bound, all at once.
            expiries[:] = [e for e in expiries if e[1] in self.sessions]
            heapq.heapify(expiries)
        heapq.heappush(expiries, (at, session.client_id, channel))

    def forget(self, session: Session) -> None:
        """The connection is gone; its subscriptions are left by the session."""
        self.waiting.pop(session, None)
        if session.client_id is not None and self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            sessions = self.users.get(session.credentials.user)
            if sessions is not None:
                sessions.discard(session)
                if not sessions:
                    del self.users[session.credentials.user]

    def _tick(self) -> None:
        loop = self._loop
        now = loop.time()
        late = [s for s, deadline in self.waiting.items() if deadline <= now]
        for session in late:
            del self.waiting[session]
            self.stats.failed_handshake("connect_timeout")
            session.disconnect(codes.CONNECT_TIMEOUT)
        wall = time.time()
        expiries = self._expiries
        while expiries and expiries[0][0] <= wall:
            _, client_id, channel = heapq.heappop(expiries)
            session = self.sessions.get(client_id)
            if session is not None:
                session.token_expired(channel, wall)
        self._timer = loop.call_later(TICK, self._tick)

    def _refresh_presence(self) -> None:
        async def refresh(channel: str, info: ClientInfo) -> None:
            try:
                await self.broker.add_presence(channel, info)
            except Exception as exc:
                logger.warning("fastws hub: presence refresh failed for %s: %s", channel, exc)

        if self.broker.healthy:  # while it is down every refresh would fail; the next one restores
            for state in self.channels.values():
                for sub in state.subscribers.values():
                    if sub.joined and sub.options.presence:
                        self.run(refresh(sub.channel, sub.client_info))
        self._presence_timer = self._loop.call_later(
            self.broker.presence_ttl / 3, self._refresh_presence
        )

    # -- the cluster ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """What this node announces to the others (JSON-ready)."""
        return {
            "node": self.id,
            "version": fastws.__version__,
            "started_at": self.started_at,
            "connections": len(self.sessions),
            "users": len(self.users),
            "subscriptions": sum(len(s.subscribers) for s in self.channels.values()),
            "channels": {name: len(state.subscribers) for name, state in self.channels.items()},
        }

    async def announce(self) -> None:
        """Tell the other nodes what this one holds now."""
        summary = orjson.dumps(self.summary())
        await self.broker.announce(self.id, summary, self.config.node_ttl)

    def _announce_now(self) -> None:
        async def announce() -> None:
            try:
                await self.announce()
            except Exception as exc:
                logger.info("fastws hub: announcing the node failed: %s", exc)

        if self.broker.healthy:
            self.run(announce())
        self._announce_timer = self._loop.call_later(self.config.node_ttl / 3, self._announce_now)

    async def cluster(self) -> list[dict[str, Any]]:
        """Every live node's announcement, this node's as it is now, sorted by node id."""
        await self.announce()
        nodes = [orjson.loads(info) for info in (await self.broker.nodes()).values()]
        return sorted(nodes, key=lambda node: node["node"])

    async def control(self, operation: dict[str, Any]) -> None:
        """Have every node (this one included) apply ``operation`` to its connections."""
        await self.broker.control(orjson.dumps(operation))

    def on_control(self, data: bytes) -> None:
        """An operation of the server API: ``user`` and ``client`` (either may be None)
        name the connections it is for; the connections of this node among them act."""
        operation = orjson.loads(data)
        user, client = operation.get("user"), operation.get("client")
        if client is not None:
            session = self.sessions.get(client)
            targets = () if session is None or user not in (None, session.credentials.user) else (session,)
        else:
            targets = tuple(self.users.get(user, ()))
        kind = operation["op"]
        for session in targets:
            if kind == "disconnect":
                disconnect = codes.Disconnect(
                    operation["code"], operation["reason"], operation["reconnect"]
                )
                session.disconnect(disconnect)
            elif kind == "refresh":
                if operation["expired"]:
                    session.disconnect(codes.TOKEN_EXPIRED)
                else:
                    self.refresh(session, operation["expire_at"])
            elif kind == "subscribe":
                session.subscribe_by_server(operation["channel"])
            elif kind == "unsubscribe":
                session.unsubscribe_by_server(operation["channel"])

    def refresh(self, session: Session, expires_at: float | None) -> None:
        """The connection now expires at ``expires_at`` (None: never)."""
        session.credentials = replace(session.credentials, expires_at=expires_at)
        self.expires(session, expires_at)

    # -- channel membership -------------------------------------------------------------

    def namespace(self, channel: str) -> Namespace:
        """The namespace of ``channel``; error 404 when it is not declared."""
        namespace = self.config.namespace(channel)
        if namespace is None:
            raise codes.HubError(
                codes.NOT_FOUND,
                f"unknown channel {channel!r}: no namespace {namespace_name(channel)!r} "
                "is declared",
            )
        return namespace

    async def subscribe(self, sub: Subscription) -> None:
        """Register ``sub`` (buffering) and make sure the broker delivers its channel here."""
        channel = sub.channel
        state = self.channels.get(channel)
        if state is not None:
            state.subscribers[sub.session] = sub
            if state.ready is not None:
                await asyncio.shield(state.ready)
            return
        state = self.channels[channel] = ChannelState()
        state.subscribers[sub.session] = sub
        if self.broker.inline:
            self._notify_channel("channel_occupied", channel, await self.broker.subscribe(channel))
            return
        state.ready = self._loop.create_future()
        try:
            occupied = await self.broker.subscribe(channel)
        except BaseException as exc:
            if not state.ready.done():
                state.ready.set_exception(codes.HubError(codes.BROKER_UNAVAILABLE, str(exc)))
                state.ready.exception()  # retrieved: waiters re-raise it, nobody else must
            if self.channels.get(channel) is state:
                del self.channels[channel]
            raise
        else:
            state.ready.set_result(None)
            state.ready = None
            self._notify_channel("channel_occupied", channel, occupied)

    async def unsubscribe(self, sub: Subscription) -> None:
        """Remove ``sub``; the last local subscriber ends the node's interest in the channel."""
        channel = sub.channel
        state = self.channels.get(channel)
        if state is None or state.subscribers.get(sub.session) is not sub:
            return
        del state.subscribers[sub.session]
        state.catching_up.pop(sub, None)
        if not state.subscribers:
            del self.channels[channel]
            self._notify_channel("channel_vacated", channel, await self.broker.unsubscribe(channel))

    def on_channel_vacated(self, channel: str) -> None:
        self._notify_channel("channel_vacated", channel, True)

    def on_channel_occupied(self, channel: str) -> None:
        self._notify_channel("channel_occupied", channel, True)

    def _notify_channel(self, event: str, channel: str, happened: bool | None) -> None:
        """Tell the hooks a channel got its first subscriber or lost its last one in the
        whole cluster: only the node whose broker call made it so does, or the one the
        broker picked when a node that is gone held the last subscription."""
        hooks = self.hooks
        if happened and hooks is not None and hooks.has(event):
            self.run(hooks.notify(event, None, channel=channel))

    def activate(self, sub: Subscription, position: StreamPosition) -> None:
        """The subscribe reply went out at ``position``: release what arrived meanwhile,
        or, when the channel's stream here is behind ``position``, once it gets there."""
        state = self.channels.get(sub.channel)
        if state is not None:
            if state.epoch is None:
                state.epoch, state.offset = position.epoch, position.offset
            elif state.epoch == position.epoch and state.offset < position.offset:
                state.catching_up[sub] = position  # goes on buffering
                return
        buffered, sub.buffer = sub.buffer, None
        if not buffered:
            return
        last = position.offset
        wire = sub.session.wire
        stats = self.stats
        for publication in buffered:
            if publication.epoch == position.epoch and publication.offset <= last:
                continue  # already in the reply
            if publication.epoch != position.epoch or publication.offset != last + 1:
                sub.session.end_subscription(sub, codes.INSUFFICIENT_STATE)
                return
            last = publication.offset
            frame = wire.frame(messages.publication_push(wire, sub.channel, publication))
            sub.session.push(frame)
            stats.deliveries += 1
            stats.sent("pub", 1, len(frame))

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, channel: str, data: bytes, user: str | None) -> StreamPosition:
        options = self.namespace(channel)
        publish_options = self._publish_options.get(options)
        if publish_options is None:
            publish_options = PublishOptions(options.history_size, options.history_ttl)
            self._publish_options[options] = publish_options
        stats = self.stats
        start = time.perf_counter()
        position = await self.broker.publish(channel, data, user, publish_options)
        stats.publish_latency.observe(time.perf_counter() - start)
        stats.publications += 1
        return position

    # -- the broker's sink ----------------------------------------------------------------

    def fan_out(
        self, sessions: Iterable[Session], message: Callable[[Wire], Any], kind: str
    ) -> int:
        """Push ``message`` to ``sessions``: built and framed once per encoding in use."""
        frames: list[bytes | None] = [None] * len(WIRES)
        count = nbytes = 0
        for session in sessions:
            wire = session.wire
            frame = frames[wire.index]
            if frame is None:
                frame = frames[wire.index] = wire.frame(message(wire))
            session.push(frame)
            count += 1
            nbytes += len(frame)
        if count:
            self.stats.sent(kind, count, nbytes)
        return count

    def on_publication(self, channel: str, publication: Publication) -> None:
        state = self.channels.get(channel)
        if state is None:
            return
        if state.epoch == publication.epoch:
            if publication.offset <= state.offset:
                return  # delivered twice by the broker
            gap = publication.offset != state.offset + 1
        else:
            gap = state.epoch is not None
        state.epoch, state.offset = publication.epoch, publication.offset
        live = []
        for session, sub in tuple(state.subscribers.items()):
            if sub.buffer is not None:
                sub.buffer.append(publication)
            elif gap:
                session.end_subscription(sub, codes.INSUFFICIENT_STATE)
            else:
                live.append(session)
        self.stats.deliveries += self.fan_out(
            live, lambda wire: messages.publication_push(wire, channel, publication), "pub"
        )
        if state.catching_up:
            self._release_caught_up(state, publication)

    def _release_caught_up(self, state: ChannelState, publication: Publication) -> None:
        """Activate the subscriptions whose reply position the stream has now reached (or
        left behind with a new epoch): their buffers hold everything since."""
        for sub, position in tuple(state.catching_up.items()):
            if publication.epoch == position.epoch and publication.offset < position.offset:
                continue
            del state.catching_up[sub]
            if sub.session.subscriptions.get(sub.channel) is sub:
                self.activate(sub, position)

    def _to_live(self, channel: str, kind: str, message: Callable[[Wire], Any]) -> None:
        state = self.channels.get(channel)
        if state is not None:
            live = [s for s, sub in tuple(state.subscribers.items()) if sub.buffer is None]
            self.fan_out(live, message, kind)

    def on_join(self, channel: str, info: ClientInfo) -> None:
        self._to_live(channel, "join", lambda w: messages.join_leave_push(w, "join", channel, info))

    def on_leave(self, channel: str, info: ClientInfo) -> None:
        self._to_live(
            channel, "leave", lambda w: messages.join_leave_push(w, "leave", channel, info)
        )

    def on_user_message(self, user: str, sender: str | None, data: bytes) -> None:
        sessions = self.users.get(user)
        if sessions:
            # A copy: a slow consumer leaves the set while it is pushed to.
            self.fan_out(
                tuple(sessions), lambda w: messages.message_push(w, sender, data), "message"
            )

    def on_disconnect_user(self, user: str, code: int, reason: str) -> None:
        disconnect = codes.Disconnect(code, reason)
        for session in tuple(self.users.get(user, ())):
            session.disconnect(disconnect)


def recovers(since: StreamPosition, result: HistoryResult, limit: int | None = None) -> bool:
    """Does ``result`` (read after ``since``) hold every publication since then?"""
    position = result.position
    if since.epoch != position.epoch or since.offset > position.offset:
        return False
    if since.offset == position.offset:
        return True
    publications = result.publications
    if not publications or publications[0].offset != since.offset + 1:
        return False
    return limit is not None or publications[-1].offset == position.offset


__all__ = ["ChannelState", "Node", "Subscription", "recovers"]
