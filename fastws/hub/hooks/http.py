"""A small HTTP/1.1 client for the proxy: JSON POSTs to one endpoint, connections reused.

The hub has no HTTP client among its dependencies and needs only this: POST a
JSON body, read a status and a body (Content-Length or chunked), keep the
connection for the next call. ``httptools`` (already used for the handshake)
parses the response.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse

import httptools

MAX_IDLE = 16  # idle connections kept per endpoint


class HttpError(Exception):
    """The endpoint could not be reached, or did not answer in HTTP."""


class _Response:
    """httptools' callbacks gather the status and the body."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.complete = False
        self.keep_alive = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


class Endpoint:
    """POSTs to one URL (``http://`` or ``https://``), over connections it keeps open."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.authority = parts.netloc.rpartition("@")[2]
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """The status and body of a POST of ``body`` (JSON); raises HttpError."""
        head = [
            f"POST {self.target} HTTP/1.1",
            f"Host: {self.authority}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        head += [f"{name}: {value}" for name, value in headers.items()]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        reused = bool(self._idle)
        reader, writer = self._idle.pop() if reused else await self._open()
        try:
            status, answer, keep = await self._exchange(reader, writer, request)
        except (OSError, HttpError, asyncio.IncompleteReadError) as exc:
            writer.close()
            if not reused:
                raise HttpError(str(exc) or type(exc).__name__) from None
            # A kept connection the server closed meanwhile: once more on a new one.
            reader, writer = await self._open()
            try:
                status, answer, keep = await self._exchange(reader, writer, request)
            except (OSError, HttpError, asyncio.IncompleteReadError) as exc:
                writer.close()
                raise HttpError(str(exc) or type(exc).__name__) from None
        except BaseException:  # cancelled (a timeout): the connection is in an unknown state
            writer.close()
            raise
        if keep and len(self._idle) < MAX_IDLE:
            self._idle.append((reader, writer))
        else:
            writer.close()
        return status, answer

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        except OSError as exc:
            raise HttpError(f"cannot connect to {self.authority}: {exc.strerror or exc}") from None

    @staticmethod
    async def _exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> tuple[int, bytes, bool]:
        writer.write(request)
        response = _Response()
        parser = httptools.HttpResponseParser(response)
        while not response.complete:
            data = await reader.read(65536)
            if not data:
                raise HttpError("the connection closed before the response was complete")
            try:
                parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise HttpError(f"malformed HTTP response: {exc}") from None
        return parser.get_status_code(), bytes(response.body), parser.should_keep_alive()

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


__all__ = ["Endpoint", "HttpError"]
