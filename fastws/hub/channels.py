"""Channel names and channel patterns.

A channel name is 1 to 255 characters from ``[A-Za-z0-9_:.@$#/-]``. A pattern
is a channel name, optionally ending with ``*`` which matches any rest
(``chat:*`` matches ``chat:lobby`` and ``chat:``); ``*`` alone matches every
channel. No other wildcard exists: this keeps matching a prefix test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_CHANNEL_LENGTH = 255

_NAME = re.compile(r"[A-Za-z0-9_:.@$#/\-]+")


def channel_error(channel: object) -> str | None:
    """Why ``channel`` is not a valid channel name, or None when it is."""
    if not isinstance(channel, str):
        return f"channel must be a string, not {type(channel).__name__}"
    if not channel:
        return "channel must not be empty"
    if len(channel) > MAX_CHANNEL_LENGTH:
        return f"channel name longer than {MAX_CHANNEL_LENGTH} characters"
    if not _NAME.fullmatch(channel):
        return f"channel {channel!r} has characters outside [A-Za-z0-9_:.@$#/-]"
    return None


def pattern_error(pattern: object) -> str | None:
    """Why ``pattern`` is not a valid channel pattern, or None when it is."""
    if not isinstance(pattern, str):
        return f"pattern must be a string, not {type(pattern).__name__}"
    if pattern == "*":
        return None
    name = pattern[:-1] if pattern.endswith("*") else pattern
    if "*" in name:
        return f"pattern {pattern!r} has a '*' that is not at the end"
    error = channel_error(name)
    return error and f"pattern {pattern!r}: {error}"


class Patterns:
    """A compiled list of patterns: ``match(name)`` is a set lookup plus a prefix test."""

    __slots__ = ("_exact", "_prefixes", "everything")

    def __init__(self, patterns: Iterable[str]) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in patterns:
            if pattern.endswith("*"):
                prefixes.append(pattern[:-1])
            else:
                exact.add(pattern)
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        self.everything = "" in self._prefixes

    def match(self, name: str) -> bool:
        return name in self._exact or name.startswith(self._prefixes)

    def __repr__(self) -> str:
        return f"Patterns({sorted(self._exact) + [p + '*' for p in self._prefixes]!r})"


__all__ = ["MAX_CHANNEL_LENGTH", "Patterns", "channel_error", "pattern_error"]
