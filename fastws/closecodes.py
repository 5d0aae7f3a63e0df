"""RFC 6455 section 7.4 close codes, and which of them may travel in a close frame."""

from __future__ import annotations

NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
NO_STATUS = 1005  # never sent: stands for "close frame without a code"
ABNORMAL = 1006  # never sent: stands for "no close frame at all"
INVALID_DATA = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
MANDATORY_EXTENSION = 1010
INTERNAL_ERROR = 1011
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013
BAD_GATEWAY = 1014
TLS_HANDSHAKE = 1015  # never sent



def is_valid_wire_code(code: int) -> bool:
    """True when ``code`` may appear in a close frame on the wire."""
    if 3000 <= code <= 4999:
        return True
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)


def parse_close(payload: bytes | bytearray | memoryview) -> tuple[int, str]:
    """Decode a close frame payload into ``(code, reason)``.

    An empty payload means "no status" (1005). A one-byte payload, a code that
    may not be sent, or a reason that is not UTF-8 raises ``ProtocolError``.
    """
    from fastws.errors import ProtocolError

    n = len(payload)
    if n == 0:
        return NO_STATUS, ""
    if n == 1:
        raise ProtocolError(PROTOCOL_ERROR, "close frame payload of one byte")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_wire_code(code):
        raise ProtocolError(PROTOCOL_ERROR, f"close code {code} is not allowed on the wire")
    try:
        reason = bytes(payload[2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(INVALID_DATA, "close reason is not valid UTF-8") from None
    return code, reason


def build_close(code: int = NORMAL, reason: str = "") -> bytes:
    """Encode a close frame payload; 1005 (no status) gives an empty payload."""
    if code == NO_STATUS:
        if reason:
            raise ValueError("a close without a status code cannot carry a reason")
        return b""
    if not is_valid_wire_code(code):
        raise ValueError(f"close code {code} may not be sent (use 1000-1003, 1007-1014 or 3000-4999)")
    data = reason.encode("utf-8")
    if len(data) > 123:
        raise ValueError(f"close reason is {len(data)} bytes in UTF-8; at most 123 fit in a close frame")
    return code.to_bytes(2, "big") + data
