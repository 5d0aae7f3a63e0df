"""The C load generator against a scripted server that frames its replies awkwardly."""

from __future__ import annotations

import asyncio
import json
import random
import struct

import pytest

from bench import loadgen


def server_frame(payload_len: int, opcode: int = 0x2) -> bytes:
    """An unmasked server frame with the shortest length encoding for ``payload_len``."""
    if payload_len < 126:
        header = struct.pack("!BB", 0x80 | opcode, payload_len)
    elif payload_len < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, payload_len)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, payload_len)
    return header + b"e" * payload_len


async def read_client_frame(reader: asyncio.StreamReader) -> int:
    first, second = await reader.readexactly(2)
    assert second & 0x80, "client frames must be masked"
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    await reader.readexactly(4 + length)
    return length


async def awkward_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo sizes back, sometimes dripped in tiny pieces, sometimes many frames per write,
    with an unsolicited ping thrown in (the generator must skip control frames)."""
    rng = random.Random(7)
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: ignored-by-the-load-generator\r\n\r\n" + server_frame(3, 0x9)
    )
    pending = bytearray()
    try:
        while True:
            pending += server_frame(await read_client_frame(reader))
            if reader._buffer:  # more requests already here: answer them in one write later
                continue
            if rng.random() < 0.5:
                writer.write(bytes(pending))
            else:
                view, position = bytes(pending), 0
                while position < len(view):
                    step = rng.choice((1, 2, 3, 5, 9, 127, 4096))
                    writer.write(view[position : position + step])
                    position += step
                    await writer.drain()
                    await asyncio.sleep(0)
            pending.clear()
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def run_loadgen(size: int, conns: int, window: int) -> dict:
    binary, _ = loadgen.build()
    server = await asyncio.start_server(awkward_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        process = await asyncio.create_subprocess_exec(
            str(binary), "--port", str(port), "--size", str(size), "--conns", str(conns),
            "--window", str(window), "--warmup", "0.1", "--duration", "0.5",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


@pytest.mark.parametrize(
    ("size", "conns", "window"),
    [(10, 1, 1), (125, 3, 16), (126, 2, 4), (200, 4, 16), (65535, 1, 2), (70000, 2, 3)],
)
def test_counts_echoes_whatever_the_length_encoding_and_read_boundaries(size, conns, window):
    result = asyncio.run(run_loadgen(size, conns, window))
    assert result["messages"] > 0
    assert result["bad_sizes"] == 0 and result["errors"] == 0
    assert result["p50_us"] > 0 and result["p99_us"] >= result["p50_us"]
    assert result["msgs_per_s"] > 0


def test_refused_upgrade_is_an_error():
    async def refuse(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main():
        binary, _ = loadgen.build()
        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        async with server:
            process = await asyncio.create_subprocess_exec(
                str(binary), "--port", str(server.sockets[0].getsockname()[1]),
                "--duration", "0.2", stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), 30)
            return process.returncode, out, err

    returncode, out, err = asyncio.run(main())
    assert returncode == 2
    assert b"upgrade refused: HTTP/1.1 404" in err and out == b""


def test_hub_mode_counts_every_delivery_in_each_encoding():
    """Mode ``hub`` against ``python -m fastws``: receivers subscribe with the frames they
    were given, and every publication reaches every receiver, in each encoding."""
    from bench import hub_protocols

    results = hub_protocols.run_broadcast(conns=20, messages=30, rounds=1)
    for subprotocol, (result,) in results.items():
        assert result["mode"] == "hub" and result["complete"], subprotocol
        assert result["deliveries"] == 20 * 30 and result["errors"] == 0
