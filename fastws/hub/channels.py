"""Channel names and the patterns of token claims.

A channel name is 1 to 255 characters from ``[A-Za-z0-9_:.@$#/,-]``.

A channel pattern is one of:

- a channel name, which matches that channel only (``news``, ``user:alice``);
- a name ending with ``:*``, which matches every channel that starts with the
  name and its ``:`` (``chat:*`` matches ``chat:lobby`` and ``chat:a:b``, not
  ``chat`` nor ``chatter:x``);
- ``*`` alone, which matches every channel.

``*`` anywhere else is an error: ``user:ali*`` is not a pattern, so that no
claim can reach ``user:alice`` by sharing the beginning of its name. Matching
stays a set lookup plus a prefix test.

A user pattern (the ``send`` claim) is a user id, matching that user only, or
``*`` alone, matching every user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_CHANNEL_LENGTH = 255
EVERYTHING = "*"
SEGMENT_WILDCARD = ":*"

NAME_CHARACTERS = r"A-Za-z0-9_:.@$#/,\-"  # a regular expression's character class
_NAME = re.compile(f"[{NAME_CHARACTERS}]+")


def channel_error(channel: object) -> str | None:
    """Why ``channel`` is not a valid channel name, or None when it is."""
    if not isinstance(channel, str):
        return f"channel must be a string, not {type(channel).__name__}"
    if not channel:
        return "channel must not be empty"
    if len(channel) > MAX_CHANNEL_LENGTH:
        return f"channel name longer than {MAX_CHANNEL_LENGTH} characters"
    if not _NAME.fullmatch(channel):
        return f"channel {channel!r} has characters outside [A-Za-z0-9_:.@$#/,-]"
    return None


def pattern_error(pattern: object) -> str | None:
    """Why ``pattern`` is not a valid channel pattern, or None when it is."""
    if not isinstance(pattern, str):
        return f"pattern must be a string, not {type(pattern).__name__}"
    if pattern == EVERYTHING:
        return None
    name = pattern[:-1] if pattern.endswith(SEGMENT_WILDCARD) else pattern
    if "*" in name:
        return (
            f"pattern {pattern!r}: '*' matches whole segments only: "
            "a name ending with ':*', or '*' alone"
        )
    error = channel_error(name)
    return error and f"pattern {pattern!r}: {error}"


def user_pattern_error(pattern: object) -> str | None:
    """Why ``pattern`` is not a valid user pattern, or None when it is."""
    if not isinstance(pattern, str):
        return f"user pattern must be a string, not {type(pattern).__name__}"
    if "*" in pattern and pattern != EVERYTHING:
        return f"user pattern {pattern!r}: '*' may only stand alone (every user)"
    return None


class Patterns:
    """A compiled list of patterns: ``match(name)`` is a set lookup plus a prefix test."""

    __slots__ = ("_exact", "_prefixes", "everything")

    def __init__(self, patterns: Iterable[str]) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in patterns:
            if pattern == EVERYTHING:
                prefixes.append("")
            elif pattern.endswith(SEGMENT_WILDCARD):
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


__all__ = [
    "MAX_CHANNEL_LENGTH",
    "Patterns",
    "channel_error",
    "pattern_error",
    "user_pattern_error",
]
