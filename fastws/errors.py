"""The exception hierarchy: everything fastws raises derives from WebSocketError."""

from __future__ import annotations


class WebSocketError(Exception):
    """Base class of every error raised by fastws."""


class ProtocolError(WebSocketError):
    """The peer broke RFC 6455 or a configured limit.

    ``code`` is the close code to send back (1002, 1007, 1009, ...), ``reason``
    a short human-readable explanation that fits in a close frame.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{reason} (close code {code})")
        self.code = code
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ProtocolError)
            and other.code == self.code
            and other.reason == self.reason
        )

    def __hash__(self) -> int:
        return hash((self.code, self.reason))

    def __reduce__(self):  # keep pickling (multiprocessing, hypothesis) working
        return (type(self), (self.code, self.reason))


class HandshakeError(WebSocketError):
    """The HTTP Upgrade failed; ``status`` is the HTTP status that explains why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class ConnectionClosed(WebSocketError):
    """The connection is closed; ``code`` and ``reason`` are what ended it."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


class ConnectionClosedOK(ConnectionClosed):
    """Closed cleanly with 1000 or 1001."""


class ConnectionClosedError(ConnectionClosed):
    """Closed with an error code, or without a close handshake."""
