"""The opening handshake of RFC 6455 section 4, both sides, sans-I/O.

httptools parses the HTTP; this module reads heads incrementally, checks them
against RFC 6455 and writes the answers. Nothing here touches a socket.

Status codes the server side answers with (``HandshakeError.status``):

- 400: malformed HTTP, a missing or repeated Host, a ``Connection`` without
  ``upgrade``, a missing, repeated or invalid ``Sec-WebSocket-Key``, a path
  that is not UTF-8, a malformed ``Sec-WebSocket-Extensions``;
- 403: an ``Origin`` not in the allowed set;
- 405: a method other than GET (the response carries ``Allow: GET``);
- 426: an ``Upgrade`` header without the ``websocket`` token, which includes
  plain HTTP requests with no ``Upgrade`` at all, and a ``Sec-WebSocket-Version``
  other than 13; the response carries ``Upgrade: websocket`` and
  ``Sec-WebSocket-Version: 13``, which tells both kinds of client what to do;
- 431: a request head larger than ``RequestReader.max_size``;
- 505: an HTTP version other than 1.x with x >= 1.

On the client side ``HandshakeError.status`` is the server's status when it
refused the upgrade (anything but 101), and 502 when its answer was invalid
(malformed, or a 101 that breaks RFC 6455 or our offer).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import sys
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, unquote

import httptools

from fastws.deflate import (
    BAD_RESPONSE,
    DeflateConfig,
    DeflateParams,
    client_accept,
    server_negotiate,
)
from fastws.errors import HandshakeError

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WEBSOCKET_VERSION = "13"
DEFAULT_MAX_HEAD = 16384

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_RESOURCE = re.compile(r"/[\x21-\x7e]*")


class Headers:
    """HTTP header fields: a case-insensitive multi-map that keeps their order.

    ``get`` returns the first value of a name; ``get_all`` every value, in order.
    """

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] | None = None  # built on the first lookup
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))
        self._index = None

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = self._index = {}
            for name, value in self._items:
                index.setdefault(name.lower(), []).append(value)
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._lookup().get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._lookup().get(name.lower(), ()))

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def header_tokens(headers: Headers, name: str) -> list[str]:
    """The comma-separated tokens of every ``name`` header, lowercased, empties dropped."""
    return [
        token.strip().lower()
        for value in headers.get_all(name)
        for token in value.split(",")
        if token.strip()
    ]


@dataclass(slots=True)
class Request:
    method: str
    target: str  # as sent: "/chat?room=1"
    path: str  # percent-decoded, without the query: "/chat"
    query: dict[str, list[str]]
    headers: Headers
    body: bytes = b""  # read by the server by Content-Length, for plain HTTP requests


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: Headers


@dataclass(slots=True)
class Accepted:
    """What a handshake agreed on: the subprotocol and the extensions in force."""

    subprotocol: str | None = None
    extensions: str | None = None  # the Sec-WebSocket-Extensions response value
    deflate: DeflateParams | None = None


# --- reading heads ------------------------------------------------------------


class _HeadReader:
    """Feeds bytes to an httptools parser until the head is complete.

    Never hands the parser more than ``max_size`` bytes of head. Bytes after
    the head are kept in ``leftover`` (a client may pipeline frames right
    behind its request; a server's first frames may ride with its 101).
    """

    _too_large_status = 431
    _malformed_status = 400
    _what = "request"

    def __init__(self, parser_class: type, max_size: int) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be positive, not {max_size}")
        self.max_size = max_size
        self.leftover = b""
        self._parser = parser_class(self)
        self._fed = bytearray()  # the bytes handed to the parser
        self._url = bytearray()
        self._reason = bytearray()
        self._headers = Headers()
        self._done = False
        self._head_size = 0  # bytes of _fed that are the head, once it is complete

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_status(self, reason: bytes) -> None:
        self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the whitespace before a value but keeps the one after it
        # names are interned: every connection's copy of "Sec-WebSocket-Key" is the same
        self._headers.add(sys.intern(name.decode("latin-1")), value.strip(b" \t").decode("latin-1"))

    def on_headers_complete(self) -> None:
        self._done = True

    def _feed(self, data: bytes | bytearray | memoryview) -> bool:
        """True once the head is complete (then ``leftover`` is set)."""
        if self._done:
            self.leftover += bytes(data)
            return True
        data = bytes(data)
        room = self.max_size - len(self._fed)
        chunk, rest = data[:room], data[room:]
        self._fed += chunk
        try:
            self._parser.feed_data(chunk)
        except httptools.HttpParserUpgrade as upgrade:
            self.leftover = chunk[upgrade.args[0] :] + rest
            self._head_size = len(self._fed) - len(chunk) + upgrade.args[0]
            return True
        except httptools.HttpParserError as exc:
            # An error after a complete head concerns what follows it (bytes behind a
            # request that is no Upgrade, a 101 without Upgrade): the head is usable.
            if not self._done:
                raise HandshakeError(
                    self._malformed_status, f"malformed HTTP {self._what}: {exc}"
                ) from None
        if self._done:
            start = len(self._fed) - len(self._fed.lstrip(b"\r\n"))
            end = self._fed.index(b"\r\n\r\n", start) + 4
            self.leftover = bytes(self._fed[end:]) + rest
            self._head_size = end
            return True
        if len(self._fed) >= self.max_size:
            raise HandshakeError(
                self._too_large_status,
                f"{self._what} header fields too large (more than {self.max_size} bytes)",
            )
        return False

    @property
    def head(self) -> bytes:
        """The bytes of the complete head, which parse again to the same head."""
        return bytes(self._fed[: self._head_size])


class RequestReader(_HeadReader):
    """Reads an HTTP request head incrementally (server side).

    ``feed`` returns the ``Request`` once its head is complete, None before;
    raises ``HandshakeError`` with 400 (malformed), 431 (head larger than
    ``max_size`` bytes) or 505 (HTTP version). After completion further data
    is appended to ``leftover`` and the same request returned.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_HEAD) -> None:
        super().__init__(httptools.HttpRequestParser, max_size)
        self._request: Request | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> Request | None:
        if not self._feed(data):
            return None
        if self._request is None:
            self._request = self._build()
        return self._request

    def _build(self) -> Request:
        version = self._parser.get_http_version()
        major, _, minor = version.partition(".")
        if major != "1" or minor == "0":
            raise HandshakeError(505, f"HTTP/{version} is not supported; WebSocket needs HTTP/1.1")
        target = self._url.decode("ascii")  # llhttp admits only ASCII in the target
        try:
            url = httptools.parse_url(bytes(self._url))
        except httptools.HttpParserInvalidURLError:
            raise HandshakeError(400, f"invalid request target {target!r}") from None
        raw_path = (url.path or b"").decode("ascii")
        if not raw_path.startswith("/"):
            raise HandshakeError(400, f"request target {target!r} has no absolute path")
        try:
            path = unquote(raw_path, errors="strict")
            query = parse_qs(
                (url.query or b"").decode("ascii"), keep_blank_values=True, errors="strict"
            )
        except UnicodeDecodeError:
            raise HandshakeError(
                400, f"request target {target!r} is not UTF-8 once percent-decoded"
            ) from None
        return Request(
            method=self._parser.get_method().decode("ascii"),
            target=target,
            path=path,
            query=query,
            headers=self._headers,
        )


class ResponseReader(_HeadReader):
    """Reads an HTTP response head incrementally (client side).

    ``feed`` returns the ``Response`` once its head is complete, None before;
    raises ``HandshakeError(502)`` when the response is malformed or its head
    larger than ``max_size``. Bytes after the head (the first frames, or the
    body of a refusal) go to ``leftover``.
    """

    _too_large_status = BAD_RESPONSE
    _malformed_status = BAD_RESPONSE
    _what = "response"

    def __init__(self, max_size: int = DEFAULT_MAX_HEAD) -> None:
        super().__init__(httptools.HttpResponseParser, max_size)
        self._response: Response | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> Response | None:
        if not self._feed(data):
            return None
        if self._response is None:
            self._response = Response(
                status=self._parser.get_status_code(),
                reason=self._reason.decode("latin-1"),
                headers=self._headers,
            )
        return self._response


# --- server side --------------------------------------------------------------


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def _only(headers: Headers, name: str) -> str | None:
    """The one value of ``name``; None when absent; HandshakeError(400) when repeated."""
    values = headers.get_all(name)
    if len(values) > 1:
        raise HandshakeError(400, f"the {name} header is repeated")
    return values[0] if values else None


def _check_key(key: str | None) -> None:
    if key is None:
        raise HandshakeError(400, "the Sec-WebSocket-Key header is missing")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    # The re-encoding check refuses non-canonical spellings (stray low bits).
    if len(raw) != 16 or base64.b64encode(raw).decode("ascii") != key:
        raise HandshakeError(400, f"Sec-WebSocket-Key {key!r} is not 16 bytes in base64")


def server_handshake(
    request: Request,
    *,
    subprotocols: Sequence[str] = (),
    deflate: DeflateConfig | None = None,
    origins: Collection[str | None] | None = None,
) -> Accepted:
    """Check an opening handshake request; what the server agrees to.

    ``subprotocols`` is the server's list by preference: the first one the
    client also offered wins; none in common means no subprotocol (not an
    error). ``deflate`` enables permessage-deflate. ``origins``, when given,
    is the set of allowed ``Origin`` values; put None in it to also admit
    clients that send no Origin (most non-browser clients). Raises
    ``HandshakeError``; the module docstring lists the statuses.
    """
    if request.method != "GET":
        raise HandshakeError(405, f"method {request.method} is not allowed; use GET")
    headers = request.headers
    if _only(headers, "Host") is None:
        raise HandshakeError(400, "the Host header is missing")
    if "websocket" not in header_tokens(headers, "Upgrade"):
        raise HandshakeError(426, "this resource needs a WebSocket upgrade (Upgrade: websocket)")
    if "upgrade" not in header_tokens(headers, "Connection"):
        raise HandshakeError(400, "the Connection header lacks the upgrade token")
    version = ", ".join(headers.get_all("Sec-WebSocket-Version"))
    if version != WEBSOCKET_VERSION:
        shown = repr(version) if version else "missing"
        raise HandshakeError(426, f"Sec-WebSocket-Version {shown} is not supported; use 13")
    _check_key(_only(headers, "Sec-WebSocket-Key"))
    if origins is not None:
        origin = _only(headers, "Origin")
        if origin not in origins:
            raise HandshakeError(403, f"origin {origin!r} is not allowed")

    subprotocol = None
    if subprotocols:
        offered = {
            token.strip()
            for value in headers.get_all("Sec-WebSocket-Protocol")
            for token in value.split(",")
        }
        subprotocol = next((p for p in subprotocols if p in offered), None)
    accepted = Accepted(subprotocol=subprotocol)
    if deflate is not None:
        agreed = server_negotiate(headers.get_all("Sec-WebSocket-Extensions"), deflate)
        if agreed is not None:
            accepted.extensions, accepted.deflate = agreed
    return accepted


def _encode_head(start_line: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [start_line]
    for name, value in headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if _BAD_VALUE_CHARS.search(value):
            raise ValueError(f"header {name} has a control character in its value {value!r}")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def response_101(
    request: Request, accepted: Accepted, extra_headers: Iterable[tuple[str, str]] = ()
) -> bytes:
    """The 101 Switching Protocols response to a request ``server_handshake`` accepted."""
    key = request.headers.get("Sec-WebSocket-Key")
    if key is None:
        raise ValueError("the request has no Sec-WebSocket-Key; run server_handshake first")
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if accepted.subprotocol is not None:
        headers.append(("Sec-WebSocket-Protocol", accepted.subprotocol))
    if accepted.extensions is not None:
        headers.append(("Sec-WebSocket-Extensions", accepted.extensions))
    headers.extend(extra_headers)
    return _encode_head("HTTP/1.1 101 Switching Protocols", headers)


def http_response(
    status: int,
    body: bytes | str = b"",
    *,
    content_type: str = "text/plain; charset=utf-8",
    headers: Iterable[tuple[str, str]] = (),
    close: bool = True,
) -> bytes:
    """A complete HTTP/1.1 response with Content-Length (and ``Connection: close``)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    fields = []
    if body:
        fields.append(("Content-Type", content_type))
    fields.append(("Content-Length", str(len(body))))
    if close:
        fields.append(("Connection", "close"))
    fields.extend(headers)
    return _encode_head(f"HTTP/1.1 {status} {phrase}", fields) + body


def error_response(exc: HandshakeError) -> bytes:
    """The HTTP response that refuses a handshake for ``exc``; the connection then closes."""
    reason = " ".join(exc.reason.split())  # one line, whatever the message held
    headers: list[tuple[str, str]] = []
    close = True
    if exc.status == 405:
        headers.append(("Allow", "GET"))
    elif exc.status == 426:
        # RFC 9110 15.5.22: a 426 names the protocol to upgrade to, and Upgrade needs
        # its Connection token.
        headers += [
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Version", WEBSOCKET_VERSION),
            ("Connection", "Upgrade, close"),
        ]
        close = False
    return http_response(exc.status, reason + "\n", headers=headers, close=close)


# --- client side --------------------------------------------------------------


def make_key() -> str:
    """A fresh random Sec-WebSocket-Key."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def client_request(
    host: str,
    port: int,
    resource: str,
    key: str,
    *,
    secure: bool,
    subprotocols: Sequence[str] = (),
    extensions: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    origin: str | None = None,
) -> bytes:
    """The opening handshake request. ``resource`` is the path and query, already
    percent-encoded; the Host header leaves out the scheme's default port."""
    if not _RESOURCE.fullmatch(resource):
        raise ValueError(f"resource {resource!r} must start with / and be printable ASCII")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    if port != (443 if secure else 80):
        host = f"{host}:{port}"
    fields = [
        ("Host", host),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", WEBSOCKET_VERSION),
    ]
    if origin is not None:
        fields.append(("Origin", origin))
    if subprotocols:
        fields.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    if extensions is not None:
        fields.append(("Sec-WebSocket-Extensions", extensions))
    fields.extend(headers)
    return _encode_head(f"GET {resource} HTTP/1.1", fields)


def client_check(
    response: Response,
    key: str,
    *,
    subprotocols: Sequence[str] = (),
    deflate: DeflateConfig | None = None,
) -> Accepted:
    """Check the server's answer to our request made with ``key``.

    ``subprotocols`` and ``deflate`` are what we offered. Raises
    ``HandshakeError``: the server's status when it is not 101, else 502.
    """
    if response.status != 101:
        raise HandshakeError(
            response.status, f"the server refused the upgrade: {response.status} {response.reason}"
        )
    headers = response.headers

    def fail(why: str) -> HandshakeError:
        return HandshakeError(BAD_RESPONSE, f"invalid 101 response: {why}")

    if "websocket" not in header_tokens(headers, "Upgrade"):
        raise fail("Upgrade lacks websocket")
    if "upgrade" not in header_tokens(headers, "Connection"):
        raise fail("Connection lacks upgrade")
    if headers.get_all("Sec-WebSocket-Accept") != [accept_key(key)]:
        raise fail("Sec-WebSocket-Accept does not match our key")

    accepted = Accepted()
    protocols = headers.get_all("Sec-WebSocket-Protocol")
    if protocols:
        chosen = protocols[0].strip()
        if len(protocols) > 1 or chosen not in subprotocols:
            raise fail(f"subprotocol {', '.join(protocols)!r} was not offered")
        accepted.subprotocol = chosen
    extensions = headers.get_all("Sec-WebSocket-Extensions")
    if extensions:
        value = ", ".join(extensions)
        if deflate is None:
            raise fail(f"extensions {value!r} were not offered")
        accepted.deflate = client_accept(value, deflate)
        accepted.extensions = value
    return accepted
