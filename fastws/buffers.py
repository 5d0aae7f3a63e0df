"""A pool of reusable bytearrays in power-of-two size classes.

Receive and send paths take buffers here and give them back when a read or a
write is done, so that an idle connection holds no buffer at all and a busy
one allocates nothing in the steady state.

Invariants: a buffer handed out has a length equal to its size class and is
never resized by the pool's users (memoryviews into it may be alive); a buffer
given back is kept only while its class holds fewer than ``max_free`` buffers.
"""

from __future__ import annotations

MIN_CLASS_BITS = 12  # 4 KiB: the smallest buffer worth pooling
MAX_POOLED_BITS = 24  # 16 MiB: larger buffers are allocated and dropped


class BufferPool:
    __slots__ = ("_free", "max_free", "hits", "misses", "in_use")

    def __init__(self, max_free: int = 64) -> None:
        self._free: dict[int, list[bytearray]] = {
            bits: [] for bits in range(MIN_CLASS_BITS, MAX_POOLED_BITS + 1)
        }
        self.max_free = max_free
        self.hits = 0
        self.misses = 0
        self.in_use = 0

    @staticmethod
    def size_class(size: int) -> int:
        """The capacity of the buffer that ``acquire(size)`` returns."""
        if size <= 1 << MIN_CLASS_BITS:
            return 1 << MIN_CLASS_BITS
        return 1 << (size - 1).bit_length()

    def acquire(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes (its length is its size class)."""
        capacity = self.size_class(size)
        self.in_use += 1
        free = self._free.get(capacity.bit_length() - 1)
        if free:
            self.hits += 1
            return free.pop()
        self.misses += 1
        return bytearray(capacity)

    def release(self, buf: bytearray) -> None:
        """Give ``buf`` back; it must not be used by the caller afterwards."""
        self.in_use -= 1
        free = self._free.get(len(buf).bit_length() - 1)
        if free is not None and len(free) < self.max_free and len(buf) & (len(buf) - 1) == 0:
            free.append(buf)

    @property
    def free_bytes(self) -> int:
        return sum(len(b) for free in self._free.values() for b in free)

    def stats(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "in_use": self.in_use,
            "free_bytes": self.free_bytes,
        }

    def clear(self) -> None:
        """Drop every free buffer (the counters stay)."""
        for free in self._free.values():
            free.clear()


default_pool = BufferPool()
