"""The buffer pool, and the codec's use of it: nothing leaks, nothing lingers."""

from __future__ import annotations

import gc
import sys

import pytest

from fastws.buffers import MAX_POOLED_BITS, MIN_CLASS_BITS, BufferPool, default_pool

KEY = b"\x01\x02\x03\x04"


# --------------------------------------------------------------------------- the pool


@pytest.mark.parametrize(
    ("size", "capacity"),
    [
        (0, 4096),
        (1, 4096),
        (4095, 4096),
        (4096, 4096),
        (4097, 8192),
        (65535, 65536),
        (65536, 65536),
        (65537, 131072),
        (1 << 24, 1 << 24),
        ((1 << 24) + 1, 1 << 25),
    ],
)
def test_size_class(size, capacity):
    assert BufferPool.size_class(size) == capacity
    assert len(BufferPool().acquire(size)) == capacity


def test_acquire_release_reuses_and_counts():
    pool = BufferPool()
    first = pool.acquire(100)
    assert (pool.hits, pool.misses, pool.in_use) == (0, 1, 1)
    pool.release(first)
    assert pool.in_use == 0
    assert pool.free_bytes == 4096
    again = pool.acquire(4000)
    assert again is first
    assert (pool.hits, pool.misses, pool.in_use) == (1, 1, 1)
    other = pool.acquire(5000)  # another class: a fresh buffer
    assert other is not first and len(other) == 8192
    assert pool.stats() == {"hits": 1, "misses": 2, "in_use": 2, "free_bytes": 0}
    pool.release(again)
    pool.release(other)
    assert pool.stats() == {"hits": 1, "misses": 2, "in_use": 0, "free_bytes": 4096 + 8192}


def test_free_list_is_bounded():
    pool = BufferPool(max_free=2)
    buffers = [pool.acquire(10) for _ in range(5)]
    for buf in buffers:
        pool.release(buf)
    assert pool.in_use == 0
    assert pool.free_bytes == 2 * 4096
    kept = [pool.acquire(10) for _ in range(3)]
    assert sum(any(k is b for b in buffers) for k in kept) == 2
    assert pool.hits == 2


def test_oversized_and_foreign_buffers_are_not_kept():
    pool = BufferPool()
    huge = pool.acquire((1 << MAX_POOLED_BITS) + 1)
    assert len(huge) == 1 << (MAX_POOLED_BITS + 1)
    pool.release(huge)
    assert pool.free_bytes == 0 and pool.in_use == 0
    pool.acquire(1)
    pool.release(bytearray(5000))  # not a size class
    assert pool.free_bytes == 0


def test_clear_drops_free_buffers_but_keeps_counters():
    pool = BufferPool()
    pool.release(pool.acquire(1 << MIN_CLASS_BITS))
    pool.release(pool.acquire(1 << 20))
    assert pool.free_bytes == 4096 + (1 << 20)
    pool.clear()
    assert pool.free_bytes == 0
    assert pool.stats() == {"hits": 0, "misses": 2, "in_use": 0, "free_bytes": 0}


def test_default_pool_exists():
    assert isinstance(default_pool, BufferPool)


# --------------------------------------------------------------------------- the codec on the pool


def small_frames(codec, count: int) -> bytes:
    """``count`` masked client frames of assorted small sizes."""
    return b"".join(
        codec.build_frame(2 if i % 3 else 1, b"abcdefghijklmnop"[: i % 17], mask_key=KEY)
        for i in range(count)
    )


def test_a_million_frames_leave_the_pool_idle(codec):
    pool = BufferPool()
    count = 0

    def on_frame(opcode, fin, rsv1, payload):
        nonlocal count
        count += 1

    parser = codec.FrameParser(on_frame, pool=pool)
    batch = small_frames(codec, 1000)
    for _ in range(1000):
        parser.feed(batch)
    assert count == 1_000_000
    assert parser.buffered == 0
    assert pool.in_use == 0

    # the BufferedProtocol path, with reads that end inside frames
    stream = batch * 20
    pos = 0
    read_size = 4099
    while pos < len(stream):
        view = parser.get_buffer(-1)
        n = min(len(view), read_size, len(stream) - pos)
        view[:n] = stream[pos : pos + n]
        parser.buffer_updated(n)
        pos += n
        assert pool.in_use == (1 if parser.buffered else 0)
    assert count == 1_020_000
    assert parser.buffered == 0
    assert pool.in_use == 0


def _allocated_blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_parsing_allocates_no_lasting_objects(codec, path):
    """After warm-up, parsing N frames whose payloads are dropped leaves no
    objects behind, whatever N is."""
    pool = BufferPool()
    parser = codec.FrameParser(lambda opcode, fin, rsv1, payload: None, pool=pool)
    batch = small_frames(codec, 500)
    tail = batch[:7]  # leave a partial frame pending between rounds

    def run(rounds: int) -> None:
        for _ in range(rounds):
            if path == "feed":
                parser.feed(batch)
            else:
                view = parser.get_buffer(-1)
                view[: len(batch)] = batch
                parser.buffer_updated(len(batch))

    run(20)
    parser.feed(tail)
    parser.release()
    before = _allocated_blocks()
    run(40)  # 20 000 frames
    middle = _allocated_blocks()
    run(400)  # 200 000 frames
    after = _allocated_blocks()
    assert pool.in_use == 0
    assert abs(middle - before) < 50, middle - before
    assert abs(after - middle) < 50, after - middle
