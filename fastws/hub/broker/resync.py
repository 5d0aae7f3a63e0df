"""Filling a channel's gap after a broker link came back, the same for every remote broker.

While a channel resyncs, its live publications are held; the broker reads what the node
missed from the channel's history (``missed``), then delivers that and the held ones
through ``newer``, which drops what the node already has, so nothing arrives twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator

from fastws.hub.broker.base import BrokerUnavailable, HistoryResult, Publication, StreamPosition

logger = logging.getLogger("fastws.hub")


async def missed(
    channel: str,
    last: StreamPosition | None,
    read: Callable[[StreamPosition | None], Awaitable[HistoryResult]],
) -> list[Publication]:
    """The publications of ``channel`` after ``last`` (the node's last one), read by
    ``read(since)``. When the stream is a new one (another epoch), all of the new stream,
    so the node sees the gap; nothing when the node had nothing or history is unavailable."""
    if last is None:
        return []
    try:
        result = await read(StreamPosition(last.offset, last.epoch))
        if result.position.epoch != last.epoch:
            result = await read(None)
    except BrokerUnavailable as exc:
        logger.info("fastws hub: no history to resync %s: %s", channel, exc)
        return []
    return result.publications


def newer(
    positions: dict[str, StreamPosition],
    channel: str,
    publications: Iterable[Publication],
) -> Iterator[Publication]:
    """The publications the node has not had yet, in order; each one yielded becomes the
    channel's last position in ``positions``."""
    for publication in publications:
        last = positions.get(channel)
        if last is not None and last.epoch == publication.epoch and publication.offset <= last.offset:
            continue
        positions[channel] = publication
        yield publication


__all__ = ["missed", "newer"]
