"""The reference frame codec in pure Python.

This module defines what the codec does; the compiled ``fastws._codec`` must
behave identically (same frames, same errors, same buffer discipline) and is
only faster. It is also the fallback when no C compiler was available.
See ``_codec.pyi`` for the API.
"""

from __future__ import annotations

import codecs
import os
import struct
import threading
from collections.abc import Callable

from fastws import faults
from fastws.buffers import BufferPool, default_pool
from fastws.closecodes import build_close, parse_close
from fastws.errors import ProtocolError

__all__ = [
    "OP_CONTINUATION",
    "OP_TEXT",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_PING",
    "OP_PONG",
    "apply_mask",
    "random_mask",
    "build_frame",
    "write_frame",
    "FrameParser",
    "Utf8Validator",
    "validate_utf8",
    "parse_close",
    "build_close",
]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))
_READ_SIZE = 65536  # the buffer class a parser reads into when it holds nothing

# The shared read buffer: reads and the parsing that follows them are synchronous
# on the loop's thread, so every parser of the main thread reads into this one
# buffer and keeps only the incomplete frame left at the end of a read, moved
# into a pooled buffer of its size. The parser processing bytes in it is the
# scratch user; meanwhile (a callback feeding another parser) others use the pool.
_scratch = bytearray(_READ_SIZE)
_scratch_view = memoryview(_scratch)
_scratch_thread = threading.main_thread().ident
_scratch_user: list[FrameParser | None] = [None]


def _scratch_free() -> bool:
    return _scratch_user[0] is None and threading.get_ident() == _scratch_thread


def _shared_read_buffer() -> bytearray:
    """The shared read buffer (for tests: payload views may point into it)."""
    return _scratch
_size_class = BufferPool.size_class

Buffer = bytes | bytearray | memoryview
FrameCallback = Callable[[int, bool, bool, memoryview], object]


# --------------------------------------------------------------------------- masking


def _as_bytes_view(data: Buffer) -> memoryview:
    """``data`` as a flat view of unsigned bytes; strided views are refused."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise TypeError("a contiguous buffer is required")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _masked(data: Buffer, key: bytes) -> bytes:
    """``data`` XOR the repeated ``key``, as new bytes (one big-int XOR: C speed)."""
    n = len(data)
    if not n:
        return b""
    stream = memoryview(key * ((n >> 2) + 1))[:n]
    mixed = int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")
    return mixed.to_bytes(n, "little")


def apply_mask(buf: bytearray | memoryview, key: Buffer, offset: int = 0) -> None:
    """XOR ``buf`` in place with the 4-byte ``key``, starting at key byte ``offset % 4``.

    ``offset`` lets a payload be unmasked in pieces: pass the number of payload
    bytes already unmasked.
    """
    if len(key) != 4:
        raise ValueError("mask key must be 4 bytes")
    view = memoryview(buf)
    if view.readonly:
        raise TypeError("apply_mask needs a writable buffer (bytearray or writable memoryview)")
    view = _as_bytes_view(view)
    if not len(view):
        return
    key = bytes(key)
    shift = offset & 3
    if shift:
        key = key[shift:] + key[:shift]
    view[:] = _masked(view, key)


_random_chunk = b""
_random_pos = 0


def _forget_random_chunk() -> None:
    # a forked child must not reuse the parent's remaining (already known) bytes
    global _random_chunk, _random_pos
    _random_chunk = b""
    _random_pos = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_random_chunk)


def random_mask() -> bytes:
    """Four unpredictable bytes for a client frame's masking key.

    Served from a 4 KiB ``os.urandom`` chunk: one system call per 1024 keys.
    """
    global _random_chunk, _random_pos
    pos = _random_pos
    if pos + 4 > len(_random_chunk):
        _random_chunk = os.urandom(4096)
        pos = 0
    _random_pos = pos + 4
    return _random_chunk[pos : pos + 4]


# --------------------------------------------------------------------------- building


_pack_16 = struct.Struct("!BBH").pack
_pack_64 = struct.Struct("!BBQ").pack


def write_frame(
    out: bytearray,
    opcode: int,
    payload: Buffer,
    fin: bool = True,
    rsv1: bool = False,
    mask: bool = False,
    mask_key: Buffer | None = None,
) -> None:
    """Append one complete frame to ``out`` (a coalescing send buffer).

    The frame is masked with ``mask_key`` when one is given, or with a random
    key when ``mask`` is true.
    """
    if opcode not in _OPCODES:
        raise ValueError(f"unknown opcode {opcode:#x}")
    if isinstance(payload, memoryview):
        payload = _as_bytes_view(payload)
    n = len(payload)
    if opcode >= OP_CLOSE:
        if n > 125:
            raise ValueError(f"control frame payload is {n} bytes; at most 125 are allowed")
        if not fin:
            raise ValueError("control frames cannot be fragmented (fin must be true)")
        if rsv1:
            raise ValueError("RSV1 cannot be set on a control frame")
    if mask_key is not None:
        if len(mask_key) != 4:
            raise ValueError("mask key must be 4 bytes")
        key = bytes(mask_key)
    elif mask:
        key = random_mask()
    else:
        key = None
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask_bit = 0x80 if key is not None else 0
    if n < 126:
        out += bytes((b0, mask_bit | n))
    elif n < 65536:
        out += _pack_16(b0, mask_bit | 126, n)
    else:
        out += _pack_64(b0, mask_bit | 127, n)
    if key is None:
        out += payload
    else:
        out += key
        out += _masked(payload, key)


def build_frame(
    opcode: int,
    payload: Buffer,
    fin: bool = True,
    rsv1: bool = False,
    mask: bool = False,
    mask_key: Buffer | None = None,
) -> bytes:
    """One complete frame (header + payload, masked as in ``write_frame``) as bytes."""
    out = bytearray()
    write_frame(out, opcode, payload, fin, rsv1, mask, mask_key)
    return bytes(out)


# --------------------------------------------------------------------------- parsing


def _first_byte_fault(b0: int, rsv1_allowed: bool) -> int:
    """What is wrong with a frame's first byte (FIN, RSV1-3, opcode), in check order, or 0."""
    opcode = b0 & 0x0F
    if opcode not in _OPCODES:
        return faults.OPCODE
    if b0 & 0x40:
        if not rsv1_allowed:
            return faults.RSV1_UNNEGOTIATED
        if opcode >= OP_CLOSE:
            return faults.RSV1_CONTROL
        if opcode == OP_CONTINUATION:
            return faults.RSV1_CONTINUATION
    if b0 & 0x20:
        return faults.RSV2
    if b0 & 0x10:
        return faults.RSV3
    if opcode >= OP_CLOSE and not b0 & 0x80:
        return faults.FRAGMENTED_CONTROL
    return 0


# indexed by [rsv1_allowed][first byte]: 0 when the byte is acceptable
_FIRST_BYTE_FAULTS = (
    tuple(_first_byte_fault(b, False) for b in range(256)),
    tuple(_first_byte_fault(b, True) for b in range(256)),
)
_unpack_64 = struct.Struct("!Q").unpack_from


class FrameParser:
    """Incremental frame parser: bytes in, ``on_frame(opcode, fin, rsv1, payload)`` out.

    Bytes live in one buffer from ``pool``; payloads are unmasked in place and
    handed out as memoryviews into it, valid only until ``on_frame`` returns.
    An idle parser holds no buffer; one waiting for the rest of a frame holds
    the smallest size class that fits that frame. Header fields are checked as
    soon as their bytes arrive; a violation raises ``ProtocolError`` and leaves
    the parser failed (every later call raises the same error again).
    """

    __slots__ = (
        "max_size",
        "rsv1_allowed",
        "_on_frame",
        "_client",
        "_pool",
        "_buf",
        "_view",
        "_start",
        "_end",
        "_frame_size",
        "_error",
    )

    def __init__(
        self,
        on_frame: FrameCallback,
        *,
        client: bool = False,
        max_size: int = 1048576,
        rsv1_allowed: bool = False,
        pool: BufferPool | None = None,
    ) -> None:
        self._on_frame = on_frame
        self._client = bool(client)
        self.max_size = max_size
        self.rsv1_allowed = rsv1_allowed
        self._pool = default_pool if pool is None else pool
        self._buf: bytearray | None = None
        self._view: memoryview | None = None
        self._start = 0  # first pending byte
        self._end = 0  # one past the last received byte
        self._frame_size = 0  # size of the pending frame once its header is complete, else 0
        self._error: ProtocolError | None = None

    # ---- public API

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out as frames."""
        return self._end - self._start

    def feed(self, data: Buffer) -> None:
        """Copy ``data`` into the buffer and emit every complete frame."""
        if self._error is not None:
            raise self._raise_again()
        if isinstance(data, memoryview):
            data = _as_bytes_view(data)
        n = len(data)
        if not n:
            if self._end > self._start:
                self._process()
            return
        end = self._end
        need = end - self._start + n
        if need == n and n <= _READ_SIZE and _scratch_free():
            self._use_scratch()
            _scratch_user[0] = self
            end = 0
        elif self._buf is None or (need == n and self._buf is _scratch):
            self._take(need)
            end = 0
        elif need > len(self._buf) - self._start:
            self._move(_size_class(max(need, self._frame_size)))
            end = self._end
        self._view[end : end + n] = data
        self._end = end + n
        self._process()

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable view of the buffer's free tail (``asyncio.BufferedProtocol``).

        When the pending frame's size is known and larger than the buffer, the
        pending bytes move once into a buffer that fits the whole frame, so
        the payload is read straight into place.
        """
        if self._error is not None:
            raise self._raise_again()
        buf = self._buf
        if self._end == self._start and (buf is None or buf is _scratch):
            if _scratch_free():
                self._use_scratch()
                return _scratch_view
            self._take(_READ_SIZE)
        else:
            want = self._frame_size if self._frame_size > _READ_SIZE else _READ_SIZE
            if len(buf) < want:
                self._move(_size_class(want))
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        """Mark ``nbytes`` of the view from ``get_buffer`` as written; emit complete frames."""
        if self._error is not None:
            raise self._raise_again()
        buf = self._buf
        if buf is None or nbytes < 0 or self._end + nbytes > len(buf):
            raise ValueError(
                f"buffer_updated({nbytes}) does not match the view returned by get_buffer()"
            )
        if buf is _scratch:
            if _scratch_user[0] is not None and _scratch_user[0] is not self:
                raise RuntimeError("buffer_updated() without a get_buffer() just before it")
            _scratch_user[0] = self
        self._end += nbytes
        self._process()

    def release(self) -> None:
        """Return the pooled buffer and drop pending bytes; the parser may be used again."""
        self._drop()

    # ---- buffer management

    def _drop(self) -> None:
        """Give the buffer back (pending bytes are lost)."""
        buf = self._buf
        self._buf = None
        self._view = None
        self._start = self._end = self._frame_size = 0
        self._give_back(buf)

    def _give_back(self, buf: bytearray | None) -> None:
        if buf is _scratch:
            if _scratch_user[0] is self:
                _scratch_user[0] = None
        elif buf is not None:
            self._pool.release(buf)

    def _use_scratch(self) -> None:
        """Read into the shared buffer; the caller checked that this parser holds no
        pending bytes and that the shared buffer is free."""
        old = self._buf
        if old is not _scratch:
            self._buf = _scratch
            self._view = _scratch_view
            self._give_back(old)
        self._start = self._end = self._frame_size = 0

    def _take(self, size: int) -> None:
        old = self._buf
        buf = self._pool.acquire(size)
        self._buf = buf
        self._view = memoryview(buf)
        self._start = self._end = 0
        self._give_back(old)

    def _move(self, capacity: int) -> None:
        """Move the pending bytes to the start of a fresh buffer of ``capacity``."""
        old = self._buf
        start, end = self._start, self._end
        new = self._pool.acquire(capacity)
        view = memoryview(new)
        view[: end - start] = self._view[start:end]
        self._buf = new
        self._view = view
        self._start = 0
        self._end = end - start
        self._give_back(old)

    def _settle(self) -> None:
        """After parsing: give the buffer back, or keep the pending bytes at the
        start of the smallest buffer that fits the pending frame."""
        buf = self._buf
        if buf is None:
            return
        start, end = self._start, self._end
        pending = end - start
        if not pending:
            self._drop()
            return
        capacity = _size_class(self._frame_size or pending)
        if capacity != len(buf) or buf is _scratch:
            self._move(capacity)
        elif start:
            view = self._view
            view[:pending] = view[start:end]
            self._start = 0
            self._end = pending

    def _fail(self, fault: int, value: int = 0) -> ProtocolError:
        self._drop()
        self._error = ProtocolError(*faults.frame_fault(fault, value, self.max_size))
        return self._error

    def _raise_again(self) -> ProtocolError:
        error = self._error
        return ProtocolError(error.code, error.reason)

    # ---- parsing

    def _process(self) -> None:
        buf = self._buf
        try:
            self._parse(buf)
        finally:
            if self._buf is buf:
                self._settle()

    def _parse(self, buf: bytearray) -> None:
        view = self._view
        pos = self._start
        end = self._end
        on_frame = self._on_frame
        first_byte_faults = _FIRST_BYTE_FAULTS[1 if self.rsv1_allowed else 0]
        mask_bit = 0 if self._client else 0x80
        max_size = self.max_size
        while True:
            avail = end - pos
            if avail < 2:
                if avail:
                    fault = first_byte_faults[buf[pos]]
                    if fault:
                        raise self._fail(fault, buf[pos] & 0x0F)
                break
            b0 = buf[pos]
            fault = first_byte_faults[b0]
            if fault:
                raise self._fail(fault, b0 & 0x0F)
            b1 = buf[pos + 1]
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            if opcode >= OP_CLOSE and length > 125:
                raise self._fail(faults.CONTROL_TOO_LONG)
            if b1 & 0x80 != mask_bit:
                if mask_bit:
                    raise self._fail(faults.UNMASKED)
                raise self._fail(faults.MASKED)
            if length < 126:
                header = 2
            elif length == 126:
                if avail < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                header = 4
            else:
                if avail < 10:
                    break
                length = _unpack_64(buf, pos + 2)[0]
                if length >> 63:
                    raise self._fail(faults.LENGTH_MSB)
                header = 10
            if length > max_size:
                raise self._fail(faults.TOO_BIG, length)
            if mask_bit:
                header += 4
            total = header + length
            if avail < total:
                self._start = pos
                self._frame_size = total
                return
            first = pos + header
            pos += total
            payload = view[first:pos]
            if mask_bit and length:
                payload[:] = _masked(payload, bytes(buf[first - 4 : first]))
            # the frame is consumed before the callback: if it raises, the
            # parser goes on with the next frame at the next call
            self._start = pos
            self._frame_size = 0
            on_frame(opcode, b0 >= 0x80, b0 & 0x40 != 0, payload)
            if self._buf is not buf:
                return  # the callback released (or re-fed) the parser
            # the callback may have fed the parser or changed its limits
            pos = self._start
            end = self._end
            first_byte_faults = _FIRST_BYTE_FAULTS[1 if self.rsv1_allowed else 0]
            max_size = self.max_size
        self._start = pos
        self._frame_size = 0


# --------------------------------------------------------------------------- UTF-8

_utf8_decode = codecs.utf_8_decode


def _sequence_length(first: int) -> int:
    if 0xC2 <= first <= 0xDF:
        return 2
    if 0xE0 <= first <= 0xEF:
        return 3
    if 0xF0 <= first <= 0xF4:
        return 4
    return 0


def _second_byte_range(first: int) -> tuple[int, int]:
    """The continuation bytes that may follow ``first`` without an overlong
    form, a surrogate or a code point above U+10FFFF (RFC 3629)."""
    if first == 0xE0:
        return 0xA0, 0xBF
    if first == 0xED:
        return 0x80, 0x9F
    if first == 0xF0:
        return 0x90, 0xBF
    if first == 0xF4:
        return 0x80, 0x8F
    return 0x80, 0xBF


def _could_continue(tail: bytes) -> bool:
    """True when ``tail`` (1-3 bytes) is the valid beginning of one code point."""
    size = _sequence_length(tail[0])
    if not len(tail) < size:
        return False
    if len(tail) > 1:
        low, high = _second_byte_range(tail[0])
        if not low <= tail[1] <= high:
            return False
    return len(tail) < 3 or 0x80 <= tail[2] <= 0xBF


class Utf8Validator:
    """Incremental UTF-8 check for a text message arriving in fragments.

    The bulk is checked by Python's C decoder; the few bytes of a code point
    cut by a fragment boundary are checked here, so that an invalid message
    fails at the first byte that makes it invalid.
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def reset(self) -> None:
        """Forget any partial code point: the next ``feed`` starts a new message."""
        self._tail = b""

    def feed(self, data: Buffer, final: bool = False) -> None:
        """Check the next fragment; raise ``ProtocolError(1007)`` at the first
        byte that cannot start or continue valid UTF-8 (or, when ``final``, if
        a code point is left open). The validator is reset after ``final``."""
        if isinstance(data, memoryview):
            data = _as_bytes_view(data)
        tail = self._tail
        try:
            if tail:
                need = _sequence_length(tail[0]) - len(tail)
                piece = tail + bytes(data[:need])
                if len(piece) < len(tail) + need:
                    if not _could_continue(piece):
                        raise ValueError
                    self._tail = piece
                    data = b""
                else:
                    _utf8_decode(piece, "strict", True)
                    self._tail = b""
                    data = memoryview(data)[need:]
            if len(data):
                consumed = _utf8_decode(data, "strict", False)[1]
                if consumed < len(data):
                    rest = bytes(data[consumed:])
                    if not _could_continue(rest):
                        raise ValueError
                    self._tail = rest
        except ValueError:  # UnicodeDecodeError is one
            self._tail = b""
            raise ProtocolError(1007, faults.INVALID_UTF8) from None
        if final:
            left_open = bool(self._tail)
            self._tail = b""
            if left_open:
                raise ProtocolError(1007, faults.UNFINISHED_UTF8)


def validate_utf8(data: Buffer) -> bool:
    """True when ``data`` is complete, valid UTF-8 (RFC 3629: no surrogates, no overlongs)."""
    if isinstance(data, memoryview):
        data = _as_bytes_view(data)
    try:
        _utf8_decode(data, "strict", True)
    except UnicodeDecodeError:
        return False
    return True
