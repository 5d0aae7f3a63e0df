"""Typing for the frame codec; ``fastws._codec`` (Cython) and ``fastws._codec_py``
(pure Python) both implement exactly this API with identical results."""

from collections.abc import Callable
from typing import Final

from fastws.buffers import BufferPool

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

Buffer = bytes | bytearray | memoryview

def apply_mask(buf: bytearray | memoryview, key: Buffer, offset: int = 0) -> None:
    """XOR ``buf`` in place with the 4-byte ``key``, starting at key byte ``offset % 4``."""

def random_mask() -> bytes:
    """Four unpredictable bytes for a client frame's masking key."""

def build_frame(
    opcode: int,
    payload: Buffer,
    fin: bool = True,
    rsv1: bool = False,
    mask: bool = False,
    mask_key: Buffer | None = None,
) -> bytes:
    """One complete frame (header + payload, masked when ``mask``) as bytes."""

def write_frame(
    out: bytearray,
    opcode: int,
    payload: Buffer,
    fin: bool = True,
    rsv1: bool = False,
    mask: bool = False,
    mask_key: Buffer | None = None,
) -> None:
    """Append one complete frame to ``out`` (a coalescing send buffer)."""

FrameCallback = Callable[[int, bool, bool, memoryview], object]

class FrameParser:
    """Incremental frame parser: bytes in, ``on_frame(opcode, fin, rsv1, payload)`` out.

    ``payload`` is an unmasked memoryview into the parser's pooled buffer, valid
    only until ``on_frame`` returns. Errors raise ``ProtocolError`` (with the
    close code) and leave the parser failed: every later call raises it again.
    """

    max_size: int
    rsv1_allowed: bool
    def __init__(
        self,
        on_frame: FrameCallback,
        *,
        client: bool = False,
        max_size: int = 1048576,
        rsv1_allowed: bool = False,
        pool: BufferPool | None = None,
    ) -> None: ...
    def feed(self, data: Buffer) -> None: ...
    def get_buffer(self, sizehint: int = -1) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out as frames."""
    def release(self) -> None:
        """Return the pooled buffer; the parser may be used again afterwards."""

class Utf8Validator:
    """Incremental UTF-8 check for a text message arriving in fragments."""

    def __init__(self) -> None: ...
    def feed(self, data: Buffer, final: bool = False) -> None:
        """Raise ``ProtocolError(1007)`` at the first byte that cannot start or
        continue valid UTF-8 (or, when ``final``, if a code point is left open)."""
    def reset(self) -> None: ...

def validate_utf8(data: Buffer) -> bool:
    """True when ``data`` is complete, valid UTF-8 (RFC 3629: no surrogates, no overlongs)."""

def parse_close(payload: Buffer) -> tuple[int, str]: ...
def build_close(code: int = 1000, reason: str = "") -> bytes: ...
