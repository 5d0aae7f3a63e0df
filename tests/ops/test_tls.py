"""TLS: wss:// and https:// on the hub's one port, with a certificate made here."""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path

import orjson

import fastws
from bench.system import self_signed_certificate
from fastws.hub import Client
from tests.support.hubprocess import HubProcess
from tests.support.loops import run_async
from tests.support.ops import parse_metrics


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the benchmark harness makes the same)."""
    return self_signed_certificate(directory)


async def https_get(port: int, target: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    try:
        async with asyncio.timeout(10):
            data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def check_tls_hub(hub: HubProcess, context: ssl.SSLContext) -> None:
    assert "listening on https://" in hub.printed()
    assert "wss://" in hub.printed()
    status, body = await https_get(hub.port, "/api/dev/token?user=alice", context)
    assert status == 200
    token = orjson.loads(body)["token"]
    async with Client(hub.url("wss"), token=token, ssl=context) as client:
        sub = await client.subscribe("chat:tls")
        offset = await client.publish("chat:tls", {"secret": True})
        async with asyncio.timeout(10):
            pub = await anext(aiter(sub))
        assert (pub.offset, pub.data) == (offset, {"secret": True})
    async with fastws.connect(hub.url("wss"), ssl=context, subprotocols=["fastws.json"]) as ws:
        await ws.send('{"id": 1, "method": "ping"}')
        assert orjson.loads(await ws.recv())["error"]["code"] == 401  # connect first
    status, body = await https_get(hub.port, "/metrics", context)
    assert status == 200
    samples = parse_metrics(body.decode())
    assert samples[("fastws_connections_total", ())] >= 2
    # The port speaks TLS only: a plain-text request gets no HTTP answer.
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert not answer.startswith(b"HTTP/1.1 200")


@run_async(loops=("uvloop",), timeout=60)
async def test_workers_serve_wss_and_https_from_the_toml_file(tmp_path: Path) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    config = tmp_path / "hub.toml"
    config.write_text(f'certfile = "{certfile}"\nkeyfile = "{keyfile}"\n')
    context = ssl.create_default_context(cafile=str(certfile))
    async with HubProcess("--workers", "2", "--config", str(config)) as hub:
        await check_tls_hub(hub, context)
        assert await hub.stop() == 0


@run_async(loops=("uvloop",), timeout=60)
async def test_one_process_serves_tls_from_flags(tmp_path: Path) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    context = ssl.create_default_context(cafile=str(certfile))
    async with HubProcess("--certfile", str(certfile), "--keyfile", str(keyfile)) as hub:
        await check_tls_hub(hub, context)
        assert await hub.stop() == 0


@run_async(loops=("uvloop",), timeout=60)
async def test_a_certificate_that_cannot_be_loaded_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    for args in (("--certfile", str(bad)), ("--workers", "2", "--certfile", str(bad))):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fastws", "--port", "0", "--insecure", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
        assert process.returncode == 2, stderr
        assert b"certfile: cannot load" in stderr and b"Traceback" not in stderr
