"""The frame codec, Cython when it is built, pure Python otherwise.

``FASTWS_PURE=1`` forces the pure-Python reference; ``BACKEND`` says which one
is active ("cython" or "python").
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

PURE = os.environ.get("FASTWS_PURE", "") not in ("", "0")


def compiled_twin(name: str, what: str) -> ModuleType | None:
    """The compiled module ``fastws.<name>``, or None, with a warning naming ``what``,
    when it was not built. Each layer's switch (codec, connection, glue) asks this once."""
    try:
        return importlib.import_module(f"fastws.{name}")
    except ImportError as exc:
        warnings.warn(
            f"fastws: the compiled {what} is not available ({exc}); using the slower "
            "pure-Python one. Reinstall with a C compiler to build it.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


_compiled = None if PURE else compiled_twin("_codec", "codec")
if _compiled is None:
    from fastws import _codec_py as _impl
else:
    _impl = _compiled
BACKEND = "python" if _compiled is None else "cython"

OP_CONTINUATION = _impl.OP_CONTINUATION
OP_TEXT = _impl.OP_TEXT
OP_BINARY = _impl.OP_BINARY
OP_CLOSE = _impl.OP_CLOSE
OP_PING = _impl.OP_PING
OP_PONG = _impl.OP_PONG

apply_mask = _impl.apply_mask
random_mask = _impl.random_mask
build_frame = _impl.build_frame
write_frame = _impl.write_frame
FrameParser = _impl.FrameParser
Utf8Validator = _impl.Utf8Validator
validate_utf8 = _impl.validate_utf8
parse_close = _impl.parse_close
build_close = _impl.build_close

__all__ = [
    "BACKEND",
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
