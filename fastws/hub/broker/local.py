"""The in-memory broker shared by the workers of one machine, through their master.

With several worker processes and ``memory://``, the master keeps the one
``MemoryBroker`` (streams, history, presence) and each worker reaches it over
a Unix socket pair: ``LocalBroker`` (in the worker) implements the ``Broker``
interface by sending requests, ``BrokerHost`` (in the master) answers them and
is the memory broker's sink, forwarding publications, joins and leaves to the
workers interested in a channel and user messages and disconnects to all.

Why in the master: history and epochs then outlive a worker reload, and every
client sees the same streams whichever worker accepted it, without Redis.

Occupancy: the master counts the workers subscribed to each channel, so the
worker whose ``subscribe`` makes a channel occupied, or whose ``unsubscribe``
leaves it vacated, is the one told. A worker that dies holding the last
subscription of a channel leaves it vacated too: the master tells the newest
live worker (``VACATED``), or the next one to attach if none is left, so the
hook runs exactly once, where hooks run.

Ordering: each worker has one stream to the master, and the memory broker runs
a request to completion before the next, so a worker receives events and
replies in the order they happened. Subscribing is therefore as safe as with
any remote broker: once ``subscribe`` is answered, every later publication of
the channel reaches the worker after it.

Upgrade: the master that replaces this one (SIGUSR2) takes over the broker
(``state``, ``restore``, see ``handover.py``). The old master first
``freeze``s: every request read from then on is refused (FAILURE, the worker's
caller gets BrokerUnavailable and nothing is stored), and it waits until the
replies to the requests it ran are ``flushed`` into the kernel, where the
worker reads them even after the master's end is gone. Only then, in the same
loop turn as the exec, is the state taken. So each request is exactly one of:
run, in the state handed over and answered; or refused, in neither. What the
old workers held (interest, presence of clients still connected to them while
they drain) becomes ``orphans`` of the new master, kept until ``release`` is
called when that worker process has exited, as if it had died then.

Messages (msgpack arrays):

    worker -> master   [REQUEST, id, method, *args]
    master -> worker   [REPLY, id, result] | [FAILURE, id, message]
                       [PUBLICATION, channel, offset, epoch, data, user]
                       [JOIN | LEAVE, channel, client, user, info]
                       [USER_MESSAGE, user, sender, data]
                       [DISCONNECT_USER, user, code, reason]
                       [CONTROL, data]
                       [VACATED, channel]
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from fastws.hub.broker.base import (
    Broker,
    BrokerSink,
    BrokerUnavailable,
    ClientInfo,
    HistoryResult,
    Publication,
    PublishOptions,
    StreamPosition,
)
from fastws.hub.broker.handover import INT, LIST, TEXT, rows, strings
from fastws.hub.ipc import MessageStream, PendingRequests, packb

logger = logging.getLogger("fastws.hub")

REQUEST, REPLY, FAILURE = 0, 1, 2
PUBLICATION, JOIN, LEAVE, USER_MESSAGE, DISCONNECT_USER, CONTROL = 10, 11, 12, 13, 14, 15
VACATED = 16


def _now(coro: Coroutine) -> Any:
    """The result of a call to an ``inline`` broker, whose coroutines never suspend."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the shared broker suspended")


def _info(info: ClientInfo) -> list:
    return [info.client, info.user, info.info]


class _Peer:
    """One worker as the master sees it: its link, interests and presence entries
    (no link for a worker of the master this one replaced)."""

    def __init__(self, host: BrokerHost, name: str, pid: int) -> None:
        self.host = host
        self.name = name
        self.pid = pid
        self.stream: MessageStream | None = None
        self.channels: set[str] = set()
        self.presence: set[tuple[str, str]] = set()

    def on_message(self, message: Any) -> None:
        self.host._request(self, message)

    def on_lost(self, exc: Exception | None) -> None:
        self.host._forget(self)


class BrokerHost:
    """The master's side: one broker (the memory broker) and the workers attached to it.

    Requests run to completion one after the other, which keeps each worker's
    stream in order: only an ``inline`` broker, which never suspends, can be shared.
    """

    def __init__(self, broker: Broker) -> None:
        if not broker.inline:
            raise ValueError("only a broker that never suspends can be shared by the master")
        self.broker = broker
        self.peers: dict[_Peer, None] = {}  # in the order they attached
        self.interest: dict[str, set[_Peer]] = {}
        self.untold: list[str] = []  # vacated by a dead worker while no other was attached
        self.orphans: dict[int, _Peer] = {}  # by pid: workers of the master replaced
        self.frozen = False
        self.requests = 0
        self._methods: dict[str, Callable[..., Any]] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "publish": self._publish,
            "history": self._history,
            "add_presence": self._add_presence,
            "remove_presence": self._remove_presence,
            "presence": self._presence,
            "publish_join": self._publish_join,
            "publish_leave": self._publish_leave,
            "send_to_user": self._send_to_user,
            "disconnect_user": self._disconnect_user,
            "control": self._control,
            "remove_history": self._remove_history,
            "announce": self._announce,
            "nodes": self._nodes,
        }

    async def start(self) -> None:
        await self.broker.start(self)

    async def close(self) -> None:
        for peer in list(self.peers):
            if peer.stream is not None:
                await peer.stream.close()
        await self.broker.close()

    async def attach(self, sock: socket.socket, name: str, pid: int) -> _Peer:
        """Serve the worker process ``pid`` over ``sock`` (the master's end of its socket
        pair)."""
        peer = _Peer(self, name, pid)
        peer.stream = await MessageStream.open(sock, peer.on_message, peer.on_lost)
        self.peers[peer] = None
        for channel in self.untold:
            peer.stream.send([VACATED, channel])
        self.untold.clear()
        return peer

    # -- handing over (upgrade) ----------------------------------------------------------

    def freeze(self) -> None:
        """Refuse every request from now on: the state is about to be handed over."""
        self.frozen = True

    def thaw(self) -> None:
        """Serve requests again (the upgrade failed)."""
        self.frozen = False

    def flushed(self) -> bool:
        """Write every queued reply and event now; True when the kernel took them all."""
        return all(peer.stream.flushed() for peer in self.peers if peer.stream is not None)

    def state(self) -> dict:
        """The broker's state and what each worker process holds in it (``handover.py``)."""
        workers = [
            [peer.pid, sorted(peer.channels), [list(entry) for entry in sorted(peer.presence)]]
            for peer in (*self.peers, *self.orphans.values())
        ]
        return {**self.broker.state(), "workers": workers, "untold": list(self.untold)}

    def restore(self, state: dict, alive: Collection[int]) -> None:
        """Take over ``state`` from the master this one replaced (after ``start``, before
        any worker attaches). What the workers in ``alive`` held stays theirs until
        ``release``; what the others held is dropped now. HandoverRefused, with nothing
        changed, when ``state`` is not such a state."""
        workers = rows(state.get("workers"), (INT, LIST, LIST), "workers")
        for pid, channels, presence in workers:
            strings(channels, f"channels of worker {pid}")
            rows(presence, (TEXT, TEXT), f"presence of worker {pid}")
        untold = strings(state.get("untold"), "untold")
        self.broker.restore(state)
        self.untold = list(untold)
        for pid, channels, presence in workers:
            peer = _Peer(self, f"worker pid {pid} of the replaced master", pid)
            for channel in channels:
                self._subscribe(peer, channel)
            peer.presence = {(channel, client) for channel, client in presence}
            self.orphans[pid] = peer
        for pid in [pid for pid in self.orphans if pid not in alive]:
            self.release(pid)

    def release(self, pid: int) -> None:
        """The worker ``pid`` of the replaced master has exited: drop what it held."""
        peer = self.orphans.pop(pid, None)
        if peer is not None:
            self._forget(peer)

    # -- requests --------------------------------------------------------------------

    def _request(self, peer: _Peer, message: Any) -> None:
        request_id = message[1]
        self.requests += 1
        if self.frozen:
            peer.stream.send([FAILURE, request_id, "the master is being replaced"])
            return
        try:
            result = self._methods[message[2]](peer, *message[3:])
        except BrokerUnavailable as exc:
            peer.stream.send([FAILURE, request_id, str(exc)])
        except Exception as exc:
            logger.exception("fastws hub: error in a broker request from %s", peer.name)
            peer.stream.send([FAILURE, request_id, f"internal error: {exc}"])
        else:
            peer.stream.send([REPLY, request_id, result])

    def _subscribe(self, peer: _Peer, channel: str) -> bool:
        """True when this worker is the first of all to subscribe the channel."""
        peers = self.interest.get(channel)
        first = peers is None
        if first:
            _now(self.broker.subscribe(channel))
            peers = self.interest[channel] = set()
        peers.add(peer)
        peer.channels.add(channel)
        return first

    def _unsubscribe(self, peer: _Peer, channel: str) -> bool:
        """True when this worker was the last of all subscribed to the channel."""
        peer.channels.discard(channel)
        peers = self.interest.get(channel)
        if peers is not None and peer in peers:
            peers.discard(peer)
            if not peers:
                del self.interest[channel]
                _now(self.broker.unsubscribe(channel))
                return True
        return False

    def _publish(
        self, peer: _Peer, channel: str, data: bytes, user: str | None, size: int, ttl: float
    ) -> list:
        position = _now(self.broker.publish(channel, data, user, PublishOptions(size, ttl)))
        return [position.offset, position.epoch]

    def _history(
        self,
        peer: _Peer,
        channel: str,
        since: list | None,
        limit: int | None,
        reverse: bool = False,
    ) -> list:
        position = StreamPosition(since[0], since[1]) if since is not None else None
        result = _now(self.broker.history(channel, position, limit, reverse))
        publications = [[p.offset, p.epoch, p.data, p.user] for p in result.publications]
        return [result.position.offset, result.position.epoch, publications]

    def _add_presence(self, peer: _Peer, channel: str, *info: Any) -> None:
        _now(self.broker.add_presence(channel, ClientInfo(*info)))
        peer.presence.add((channel, info[0]))

    def _remove_presence(self, peer: _Peer, channel: str, client: str) -> None:
        _now(self.broker.remove_presence(channel, client))
        peer.presence.discard((channel, client))

    def _presence(self, peer: _Peer, channel: str) -> list:
        return [_info(info) for info in _now(self.broker.presence(channel)).values()]

    def _publish_join(self, peer: _Peer, channel: str, *info: Any) -> None:
        _now(self.broker.publish_join(channel, ClientInfo(*info)))

    def _publish_leave(self, peer: _Peer, channel: str, *info: Any) -> None:
        _now(self.broker.publish_leave(channel, ClientInfo(*info)))

    def _send_to_user(self, peer: _Peer, user: str, sender: str | None, data: bytes) -> None:
        _now(self.broker.send_to_user(user, sender, data))

    def _disconnect_user(self, peer: _Peer, user: str, code: int, reason: str) -> None:
        _now(self.broker.disconnect_user(user, code, reason))

    def _control(self, peer: _Peer, data: bytes) -> None:
        _now(self.broker.control(data))

    def _remove_history(self, peer: _Peer, channel: str) -> None:
        _now(self.broker.remove_history(channel))

    def _announce(self, peer: _Peer, node: str, info: bytes, ttl: float) -> None:
        _now(self.broker.announce(node, info, ttl))

    def _nodes(self, peer: _Peer) -> dict[str, bytes]:
        return _now(self.broker.nodes())

    def _forget(self, peer: _Peer) -> None:
        """A worker is gone: drop its interests and the presence of its clients; the
        channels it alone held are vacated, which one live worker is told."""
        self.peers.pop(peer, None)
        vacated = [channel for channel in list(peer.channels) if self._unsubscribe(peer, channel)]
        told = next(reversed(self.peers), None)
        for channel in vacated:
            if told is not None:
                told.stream.send([VACATED, channel])
            else:
                self.untold.append(channel)
        if self.broker.healthy:
            for channel, client in peer.presence:
                _now(self.broker.remove_presence(channel, client))
        peer.presence.clear()

    # -- the memory broker's sink ----------------------------------------------------

    def _to_interested(self, channel: str, message: list) -> None:
        peers = self.interest.get(channel)
        if peers:
            data = packb(message)
            for peer in peers:
                if peer.stream is not None:  # not an orphan
                    peer.stream.send_packed(data)

    def _to_all(self, message: list) -> None:
        data = packb(message)
        for peer in self.peers:
            peer.stream.send_packed(data)

    def on_publication(self, channel: str, publication: Publication) -> None:
        p = publication
        self._to_interested(channel, [PUBLICATION, channel, p.offset, p.epoch, p.data, p.user])

    def on_join(self, channel: str, info: ClientInfo) -> None:
        self._to_interested(channel, [JOIN, channel, *_info(info)])

    def on_leave(self, channel: str, info: ClientInfo) -> None:
        self._to_interested(channel, [LEAVE, channel, *_info(info)])

    def on_user_message(self, user: str, sender: str | None, data: bytes) -> None:
        self._to_all([USER_MESSAGE, user, sender, data])

    def on_disconnect_user(self, user: str, code: int, reason: str) -> None:
        self._to_all([DISCONNECT_USER, user, code, reason])

    def on_control(self, data: bytes) -> None:
        self._to_all([CONTROL, data])


class LocalBroker(Broker):
    """A worker's broker: the master's memory broker, over a Unix socket pair.

    ``on_lost`` is called once if the link ends while the broker is open: the
    master is gone, and the worker should let its clients go.
    """

    inline = False

    def __init__(self, sock: socket.socket, on_lost: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.on_lost = on_lost
        self._stream: MessageStream | None = None
        self._sink: BrokerSink | None = None
        self._pending = PendingRequests()
        self._closing = False

    @property
    def healthy(self) -> bool:
        return self._stream is not None and not self._stream.closed and not self._closing

    def status(self) -> dict:
        return {"state": "up" if self.healthy else "down", "kind": "memory (shared by the master)"}

    async def start(self, sink: BrokerSink) -> None:
        self._sink = sink
        self._stream = await MessageStream.open(self.sock, self._on_message, self._lost)

    async def close(self) -> None:
        self._closing = True
        if self._pending:  # let requests already sent complete (leaves, presence)
            await asyncio.wait(self._pending.futures(), timeout=1.0)
        if self._stream is not None:
            await self._stream.close()

    def _lost(self, exc: Exception | None) -> None:
        self._pending.fail_all(BrokerUnavailable("the link to the master is closed"))
        if not self._closing and self.on_lost is not None:
            self.on_lost()

    def _call(self, method: str, *args: Any) -> asyncio.Future:
        stream = self._stream
        if stream is None or stream.closed:
            raise BrokerUnavailable("the link to the master is closed")
        request_id, future = self._pending.new()
        stream.send([REQUEST, request_id, method, *args])
        return future

    def _on_message(self, message: Any) -> None:
        kind = message[0]
        sink = self._sink
        if kind == PUBLICATION:
            _, channel, offset, epoch, data, user = message
            sink.on_publication(channel, Publication(offset, epoch, data, user))
        elif kind == REPLY:
            self._pending.resolve(message[1], message[2])
        elif kind == FAILURE:
            self._pending.fail(message[1], BrokerUnavailable(message[2]))
        elif kind == JOIN:
            sink.on_join(message[1], ClientInfo(*message[2:]))
        elif kind == LEAVE:
            sink.on_leave(message[1], ClientInfo(*message[2:]))
        elif kind == USER_MESSAGE:
            sink.on_user_message(*message[1:])
        elif kind == DISCONNECT_USER:
            sink.on_disconnect_user(*message[1:])
        elif kind == CONTROL:
            sink.on_control(message[1])
        elif kind == VACATED:
            sink.on_channel_vacated(message[1])

    # -- the Broker interface ------------------------------------------------------------

    async def subscribe(self, channel: str) -> bool:
        return await self._call("subscribe", channel)

    async def unsubscribe(self, channel: str) -> bool:
        return await self._call("unsubscribe", channel)

    async def publish(
        self, channel: str, data: bytes, user: str | None, options: PublishOptions
    ) -> StreamPosition:
        offset, epoch = await self._call(
            "publish", channel, data, user, options.history_size, options.history_ttl
        )
        return StreamPosition(offset, epoch)

    async def history(
        self,
        channel: str,
        since: StreamPosition | None,
        limit: int | None,
        reverse: bool = False,
    ) -> HistoryResult:
        wanted = [since.offset, since.epoch] if since is not None else None
        # ``reverse`` travels only when set: a master of the previous release (during a
        # reload) then still serves every other read.
        extra = (True,) if reverse else ()
        offset, epoch, items = await self._call("history", channel, wanted, limit, *extra)
        return HistoryResult(StreamPosition(offset, epoch), [Publication(*item) for item in items])

    async def add_presence(self, channel: str, info: ClientInfo) -> None:
        await self._call("add_presence", channel, *_info(info))

    async def remove_presence(self, channel: str, client: str) -> None:
        await self._call("remove_presence", channel, client)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        items = await self._call("presence", channel)
        return {item[0]: ClientInfo(*item) for item in items}

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._call("publish_join", channel, *_info(info))

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self._call("publish_leave", channel, *_info(info))

    async def send_to_user(self, user: str, sender: str | None, data: bytes) -> None:
        await self._call("send_to_user", user, sender, data)

    async def disconnect_user(self, user: str, code: int, reason: str) -> None:
        await self._call("disconnect_user", user, code, reason)

    async def control(self, data: bytes) -> None:
        await self._call("control", data)

    async def remove_history(self, channel: str) -> None:
        await self._call("remove_history", channel)

    async def announce(self, node: str, info: bytes, ttl: float) -> None:
        await self._call("announce", node, info, ttl)

    async def nodes(self) -> dict[str, bytes]:
        return await self._call("nodes")


__all__ = ["BrokerHost", "LocalBroker"]
