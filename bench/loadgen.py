"""Builds the C load generator on demand and runs it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from bench.system import cache_dir

SOURCE = Path(__file__).with_name("loadgen.c")


class LoadgenError(RuntimeError):
    """The load generator could not be built or failed during a run."""


def build() -> tuple[Path, bool]:
    """Path of the compiled load generator and whether it speaks TLS.

    The binary's name carries a hash of the source, so an edited loadgen.c is rebuilt.
    TLS needs the OpenSSL headers; without them a plain build is made and TLS cases fail.
    """
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    gcc = shutil.which("gcc")
    tls_binary = cache_dir() / f"loadgen-{digest}-tls"
    plain_binary = cache_dir() / f"loadgen-{digest}"
    if tls_binary.exists():
        return tls_binary, True
    if plain_binary.exists():
        return plain_binary, False
    if not gcc:
        raise LoadgenError("gcc is needed to build bench/loadgen.c")
    tls = subprocess.run(
        [gcc, "-O2", "-DWITH_TLS", str(SOURCE), "-o", str(tls_binary), "-lssl", "-lcrypto"],
        capture_output=True,
        text=True,
    )
    if tls.returncode == 0:
        _remove_stale(tls_binary)
        return tls_binary, True
    plain = subprocess.run(
        [gcc, "-O2", str(SOURCE), "-o", str(plain_binary)], capture_output=True, text=True
    )
    if plain.returncode != 0:
        raise LoadgenError(f"building the load generator failed:\n{plain.stderr}")
    _remove_stale(plain_binary)
    return plain_binary, False


def _remove_stale(current: Path) -> None:
    """Builds of older sources are of no further use."""
    for binary in current.parent.glob("loadgen-*"):
        if binary != current:
            binary.unlink(missing_ok=True)


def parse_result(stdout: str) -> dict:
    """The JSON object printed on the load generator's last non-empty line."""
    lines = [line for line in stdout.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise LoadgenError(f"no result from the load generator: {stdout[-500:]!r}")
    return json.loads(lines[-1])
