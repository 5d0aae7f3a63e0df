"""Typing for the connection state machine; ``fastws._connection`` (Cython) and
``fastws._connection_py`` (pure Python) both implement exactly this API, with the
same bytes out, the same events and the same close codes."""

from collections.abc import Callable

from fastws._codec import FrameParser
from fastws.buffers import BufferPool
from fastws.deflate import PerMessageDeflate
from fastws.errors import ConnectionClosedError, ConnectionClosedOK

Buffer = bytes | bytearray | memoryview
MessageCallback = Callable[[int, memoryview], object]
CloseCallback = Callable[[int, str], object]

class State:  # the IntEnum of fastws._connection_py, shared by both
    ...

class Connection:
    """One WebSocket connection's protocol state, for either side.

    Bytes in through ``receive`` or ``get_buffer``/``buffer_updated``; whole
    messages out through ``on_message``, the end through ``on_close``; bytes to
    send accumulate in ``out``, which the I/O layer writes and clears.
    """

    client: bool
    out: bytearray
    max_message_size: int
    on_message: MessageCallback
    on_close: CloseCallback
    on_pong: Callable[[memoryview], object]
    close_code: int
    close_reason: str
    close_sent: bool
    close_received: bool
    parser: FrameParser
    def __init__(
        self,
        *,
        client: bool = False,
        on_message: MessageCallback = ...,
        on_close: CloseCallback = ...,
        on_pong: Callable[[memoryview], object] = ...,
        max_message_size: int = 1048576,
        deflate: PerMessageDeflate | None = None,
        pool: BufferPool | None = None,
    ) -> None: ...
    @property
    def state(self) -> State: ...
    def receive(self, data: Buffer) -> None: ...
    def get_buffer(self, sizehint: int = -1) -> memoryview: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def receive_eof(self) -> None: ...
    @property
    def buffered(self) -> int:
        """Bytes received and held: a partial frame plus a partial message."""
    def send(self, opcode: int, payload: Buffer) -> None: ...
    def send_frame(self, opcode: int, payload: Buffer, fin: bool = True, rsv1: bool = False) -> None: ...
    def send_prebuilt(self, frame: bytes) -> None: ...
    def ping(self, payload: bytes = b"") -> None: ...
    def pong(self, payload: bytes = b"") -> None: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...
    def fail(self, code: int, reason: str) -> None: ...
    def release(self) -> None: ...
    def closed_error(self) -> ConnectionClosedOK | ConnectionClosedError: ...
