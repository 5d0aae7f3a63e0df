"""The machine, the library versions, descriptor limits, CPU pinning, the test certificate."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("uvloop", "picows", "websockets", "aiohttp", "fastws")


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "fastws-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def raise_nofile_limit() -> int:
    """Lift the soft descriptor limit to the hard one (inherited by servers and load generator)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def fastws_backend() -> str:
    """The fastws codec backend as the benchmark servers see it (asked in a fresh process)."""
    probe = "import fastws.codec as c; print(getattr(c, 'BACKEND', '?'))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.stdout.strip() or "unavailable"


def versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "source tree" if package == "fastws" else "not installed"
    found["fastws codec"] = fastws_backend()
    return found


def pinning() -> tuple[list[str], list[str]]:
    """``taskset`` prefixes: the server on one core, the load generator on another.

    Core 1 serves and core 0 loads, when the process may use at least two cores; otherwise
    nothing is pinned and the numbers are less trustworthy (said in the output).
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or not shutil.which("taskset"):
        return [], []
    return ["taskset", "-c", str(cores[1])], ["taskset", "-c", str(cores[0])]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1/localhost, generated locally (no network)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    certfile, keyfile = directory / "bench-cert.pem", directory / "bench-key.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile
