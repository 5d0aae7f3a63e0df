"""What may go in the head of an HTTP request the hub sends to the application's backend.

A header line is written as given, so a name or value that could end it early (CR, LF)
or reframe the request would let whoever chose it smuggle a second request: names are
RFC 9110 tokens, values carry no control characters (a tab aside) and fit in Latin-1,
and the names that frame the request are the hub's alone.
"""

from __future__ import annotations

import re

TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# Written by the hub or about the connection itself: never taken from anyone else.
FRAMING = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
    }
)


def name_error(name: str) -> str | None:
    """Why ``name`` cannot be a header name the hub sends, or None."""
    if not TOKEN.fullmatch(name):
        return f"{name!r} is not a valid header name"
    if name.lower() in FRAMING:
        return f"{name!r} is written by the hub itself"
    return None


def value_error(value: str) -> str | None:
    """Why ``value`` cannot be a header value (never repeated: it may be a secret), or None."""
    if "\r" in value or "\n" in value:
        return "contains a line break (CR or LF)"
    if not VALUE.fullmatch(value):
        return "contains a control character or one outside Latin-1"
    return None


def forwardable(headers: dict[str, str]) -> dict[str, str]:
    """The headers among ``headers`` that may be written in a request head as they are."""
    return {
        name: value
        for name, value in headers.items()
        if name_error(name) is None and value_error(value) is None
    }


__all__ = ["FRAMING", "forwardable", "name_error", "value_error"]
