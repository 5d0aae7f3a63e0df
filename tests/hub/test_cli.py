"""``python -m fastws`` as a user runs it: a subprocess on a free port."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys

import fastws
from tests.support.cli import running
from tests.support.hub import HubClient, api, http
from tests.support.loops import run_async


@run_async(loops=("uvloop",), timeout=60)
async def test_hub_subprocess_serves_and_shuts_down_cleanly() -> None:
    env = {"FASTWS_API_KEY": "key", "FASTWS_LOG_LEVEL": "warning"}
    async with running("--port", "0", "--insecure", env=env) as (process, port):
        assert (await http(port, "GET", "/health"))[::2] == (200, b"ok")
        client = await HubClient.open(port)
        await client.result("subscribe", {"channel": "chat:lobby"})
        status, body = await api(port, "POST", "/api/publish", {"channel": "chat:lobby", "data": 1})
        assert status == 200
        pushes = await client.pushes_of("pub", 1)
        assert pushes[0]["data"] == 1 and pushes[0]["offset"] == body["result"]["offset"]
        process.send_signal(signal.SIGTERM)
        push = await client.push()
        assert push["push"] == "disconnect" and push["code"] == 1001 and push["reconnect"]
        assert (await client.closed())[0] == 1001
        async with asyncio.timeout(20):
            assert await process.wait() == 0
        stderr = (await process.stderr.read()).decode()
        assert "INSECURE" in stderr  # --insecure: the warning is there


@run_async(loops=("uvloop",), timeout=60)
async def test_echo_command_still_works() -> None:
    async with running("echo", "--port", "0") as (process, port):
        async with fastws.connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await process.wait()


def test_unsupported_settings_fail_with_a_clear_message() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])
    for args, expected in [
        (["--port", port], f"cannot listen on 127.0.0.1:{port}"),
        (["--workers", "0"], "workers: must be at least 1"),
        (["--broker", "kafka://localhost:9092"], "supported schemes: memory://, redis://"),
        (["--port", "http"], "--port: expected an integer"),
        (
            ["--broker", "nats://127.0.0.1:4222", "--local-delivery-on-outage", "true"],
            "local_delivery_on_outage: not offered by the NATS broker",
        ),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "fastws", "--insecure", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done
        assert expected in done.stderr
    taken.close()
