"""`python -m fastws echo` against independent clients: websockets, aiohttp, headless Chromium.

Each test runs once per codec backend, against an echo server in a subprocess.
aiohttp has no public way to send a fragmented message, so fragmented sends are
covered by the websockets client. Chromium is Debian's, driven by Playwright;
its page screenshots land in test-output/interop/.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import random
import threading
import urllib.parse
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import pytest
from websockets.asyncio.client import connect as websockets_connect

from tests.conformance.processes import BACKENDS, echo_server, require_backend
from tests.support.paths import ROOT, TEST_OUTPUT

OUTPUT = TEST_OUTPUT / "interop"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PAGE = ROOT / "tests" / "conformance" / "chromium_echo.html"

MESSAGES: dict[str, str | bytes] = {
    "text": "fastws h\u00e9llo \u2713 \U0001f600",
    "binary": bytes(range(256)) * 4,
    "empty-text": "",
    "empty-binary": b"",
    "1MiB-text": "0123456789abcdef" * (1 << 16),
    "1MiB-binary": random.Random(6455).randbytes(1 << 20),
}
COMPRESSION = pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])


class EchoServer(NamedTuple):
    url: str
    backend: str


@pytest.fixture(scope="module", params=BACKENDS)
def echo(request: pytest.FixtureRequest) -> Iterator[EchoServer]:
    """One `python -m fastws echo` per codec backend, shared by this module's tests."""
    backend = request.param
    require_backend(backend)
    with echo_server(backend, OUTPUT / f"echo-server-{backend}.log") as port:
        yield EchoServer(f"ws://127.0.0.1:{port}/", backend)


def run(coroutine: Coroutine[Any, Any, None], timeout: float = 30.0) -> None:
    asyncio.run(asyncio.wait_for(coroutine, timeout))


# --------------------------------------------------------------------- websockets


def websockets_client(url: str, compression: bool) -> Any:
    return websockets_connect(
        url, compression="deflate" if compression else None, max_size=None, ping_interval=None
    )


@COMPRESSION
def test_websockets_client_negotiates_compression_as_asked(
    echo: EchoServer, compression: bool
) -> None:
    async def main() -> None:
        async with websockets_client(echo.url, compression) as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in extensions) == compression, extensions

    run(main())


@COMPRESSION
@pytest.mark.parametrize("kind", list(MESSAGES))
def test_websockets_client_gets_exact_echo(echo: EchoServer, compression: bool, kind: str) -> None:
    message = MESSAGES[kind]

    async def main() -> None:
        async with websockets_client(echo.url, compression) as ws:
            await ws.send(message)
            echoed = await ws.recv()
            assert type(echoed) is type(message)
            assert echoed == message

    run(main())


@COMPRESSION
def test_websockets_client_fragmented_send_comes_back_whole(
    echo: EchoServer, compression: bool
) -> None:
    text_parts = ["frag", "mented ", "t\u00e9xt", ""]
    binary_parts = [b"\x00" * 70000, b"\xff", bytes(range(256))]

    async def main() -> None:
        async with websockets_client(echo.url, compression) as ws:
            await ws.send(text_parts)
            assert await ws.recv() == "".join(text_parts)
            await ws.send(binary_parts)
            assert await ws.recv() == b"".join(binary_parts)

    run(main())


@COMPRESSION
def test_websockets_client_ping_is_answered(echo: EchoServer, compression: bool) -> None:
    async def main() -> None:
        async with websockets_client(echo.url, compression) as ws:
            pong = await ws.ping(b"interop ping")
            await asyncio.wait_for(pong, 10)
            await ws.send("after ping")
            assert await ws.recv() == "after ping"

    run(main())


# --------------------------------------------------------------------- aiohttp


async def aiohttp_exchange(url: str, compression: bool, steps: Any) -> None:
    """Runs ``steps(ws)`` on an aiohttp client connection; pongs are delivered, not swallowed."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            url, compress=15 if compression else 0, autoping=False, max_msg_size=4 << 20
        ) as ws,
    ):
        await steps(ws)


@COMPRESSION
def test_aiohttp_client_negotiates_compression_as_asked(
    echo: EchoServer, compression: bool
) -> None:
    async def steps(ws: aiohttp.ClientWebSocketResponse) -> None:
        assert bool(ws.compress) == compression, ws.compress

    run(aiohttp_exchange(echo.url, compression, steps))


@COMPRESSION
@pytest.mark.parametrize("kind", list(MESSAGES))
def test_aiohttp_client_gets_exact_echo(echo: EchoServer, compression: bool, kind: str) -> None:
    message = MESSAGES[kind]

    async def steps(ws: aiohttp.ClientWebSocketResponse) -> None:
        if isinstance(message, str):
            await ws.send_str(message)
            expected_type = aiohttp.WSMsgType.TEXT
        else:
            await ws.send_bytes(message)
            expected_type = aiohttp.WSMsgType.BINARY
        reply = await ws.receive()
        assert reply.type == expected_type, reply
        assert reply.data == message

    run(aiohttp_exchange(echo.url, compression, steps))


@COMPRESSION
def test_aiohttp_client_ping_is_answered(echo: EchoServer, compression: bool) -> None:
    async def steps(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.ping(b"interop ping")
        reply = await ws.receive()
        assert reply.type == aiohttp.WSMsgType.PONG, reply
        assert reply.data == b"interop ping"

    run(aiohttp_exchange(echo.url, compression, steps))


@COMPRESSION
def test_aiohttp_client_close_is_clean(echo: EchoServer, compression: bool) -> None:
    async def steps(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_str("bye")
        assert (await ws.receive()).data == "bye"
        await ws.close(code=1000, message=b"done")
        assert ws.close_code == 1000

    run(aiohttp_exchange(echo.url, compression, steps))


# --------------------------------------------------------------------- Chromium


class _PageHandler(http.server.BaseHTTPRequestHandler):
    """Serves the echo page at every path; the WebSocket URL travels in the query string."""

    def do_GET(self) -> None:
        body = PAGE.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve_page() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@functools.cache
def chromium_problem() -> str | None:
    if not CHROMIUM.exists():
        return (
            f"Chromium is not installed at {CHROMIUM}: run "
            "`apt-get update && apt-get install -y chromium` (or scripts/install-test-deps.sh)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright for Python is missing ({exc}): run `pip install playwright`"
    return None


def test_chromium_page_gets_exact_echo(echo: EchoServer) -> None:
    if problem := chromium_problem():
        pytest.fail(problem, pytrace=False)
    from playwright.sync_api import sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    screenshot = OUTPUT / f"chromium-{echo.backend}.png"
    page_server = serve_page()
    page_url = (
        f"http://127.0.0.1:{page_server.server_address[1]}/?ws={urllib.parse.quote(echo.url)}"
    )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = browser.new_page()
                console: list[str] = []
                page.on("console", lambda message: console.append(message.text))
                page.goto(page_url, timeout=30_000)
                page.wait_for_function("window.testResult !== undefined", timeout=30_000)
                result = page.evaluate("window.testResult")
                page.screenshot(path=str(screenshot), full_page=True)
            finally:
                browser.close()
    finally:
        page_server.shutdown()
        page_server.server_close()

    assert result["ok"], f"{result}; console: {console}; screenshot: {screenshot}"
    assert "permessage-deflate" in result["extensions"], result["extensions"]
    assert [case["name"] for case in result["cases"]] == [
        "text",
        "empty text",
        "64 KiB text",
        "binary, all byte values",
        "empty binary",
        "1 MiB binary",
    ]
