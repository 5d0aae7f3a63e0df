"""The connection state machine, compiled when it is built, pure Python otherwise.

``Connection`` follows the codec's switch: the compiled one (``_connection.pyx``)
exactly when ``fastws.codec.BACKEND`` is "cython", so ``FASTWS_PURE=1`` makes the
whole engine pure Python; ``_connection_py.py`` is the reference, and
``_connection.pyi`` the contract both implement. ``BACKEND`` says which one is active.
"""

from __future__ import annotations

from fastws import codec
from fastws._connection_py import (
    CLOSED,
    CLOSING,
    CONNECTING,
    DEFAULT_MAX_MESSAGE_SIZE,
    OP_BINARY,
    OP_TEXT,
    OPEN,
    CloseCallback,
    MessageCallback,
    State,
    prebuild,
)
from fastws._connection_py import Connection as _ReferenceConnection

_compiled = codec.compiled_twin("_connection", "connection") if codec.BACKEND == "cython" else None
Connection: type[_ReferenceConnection] = (
    _ReferenceConnection if _compiled is None else _compiled.Connection
)
BACKEND = "python" if _compiled is None else "cython"

__all__ = [
    "BACKEND",
    "CloseCallback",
    "Connection",
    "MessageCallback",
    "State",
    "CONNECTING",
    "OPEN",
    "CLOSING",
    "CLOSED",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "OP_TEXT",
    "OP_BINARY",
    "prebuild",
]
