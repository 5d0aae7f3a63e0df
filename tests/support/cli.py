"""``python -m fastws`` started as a user starts it: a subprocess on a free port."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


@asynccontextmanager
async def running(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[tuple]:
    """Start ``python -m fastws ARGS``; yield (process, port) once it listens."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fastws",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode()
        match = re.search(r"127\.0\.0\.1:(\d+)/", line)
        assert match, f"no listening line: {line!r} {await process.stderr.read(4096)!r}"
        yield process, int(match.group(1))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
