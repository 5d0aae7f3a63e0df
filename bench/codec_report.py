"""Run the codec benchmarks and print rates side by side, with the ratios that matter.

    python -m bench.codec_report              # run, print the tables
    python -m bench.codec_report --docs       # ... and rewrite the Codec section of docs/benchmarks.md
    python -m bench.codec_report --json F     # tables from an earlier --benchmark-json file

Timing is CPU time of the benchmark process (``time.process_time``) unless ``--wall`` is
given: on a shared machine other processes take turns on the CPU, and wall time would charge
that to whichever library happened to be running. Each round lasts at least 2 ms, so reading
the clock costs nothing measurable. Rates come from the median round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

from bench.system import cpu_model

ROOT = Path(__file__).resolve().parent.parent
BENCH_FILE = "bench/test_codec_bench.py"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- codec:begin -->"
END = "<!-- codec:end -->"

PYTEST_ARGS = [
    "--benchmark-only",
    "--benchmark-min-time=0.002",
    "--benchmark-max-time=0.5",
    "--benchmark-min-rounds=5",
    "-p",
    "no:cacheprovider",
    "-q",
]

# Parse and build compare the same implementations.
FRAME_RATIOS = [
    ("cython / python", "fastws-cython", "fastws-python"),
    ("cython / websockets", "fastws-cython", "websockets"),
    ("cython / wsproto", "fastws-cython", "wsproto"),
]

# (kind, title, unit, ratios as (column, numerator impl, denominator impl))
SECTIONS = [
    (
        "parse",
        "**Parse** 1,000 masked binary frames fed as one chunk (server side)",
        "frames/s",
        FRAME_RATIOS,
    ),
    (
        "unmask",
        "**Unmask** one payload (fastws in place; websockets and wsaccel return new bytes)",
        "calls/s",
        [
            ("cython / websockets", "fastws-cython", "websockets"),
            ("cython / wsaccel", "fastws-cython", "wsaccel"),
            ("cython / python", "fastws-cython", "fastws-python"),
        ],
    ),
    (
        "build",
        "**Build** 1,000 unmasked binary frames",
        "frames/s",
        FRAME_RATIOS,
    ),
    (
        "utf8",
        "**UTF-8** validation of a text payload (bytes.decode is what websockets does)",
        "GB/s",
        [
            ("cython / bytes.decode", "fastws-cython", "bytes.decode"),
            ("cython / wsaccel", "fastws-cython", "wsaccel"),
        ],
    ),
]


def run_benchmarks(json_path: Path, wall: bool) -> str:
    """Run the benchmark file with pytest; returns the command line (without the JSON path)."""
    timer = "time.perf_counter" if wall else "time.process_time"
    args = ["-m", "pytest", BENCH_FILE, *PYTEST_ARGS, f"--benchmark-timer={timer}"]
    done = subprocess.run(
        [sys.executable, *args, f"--benchmark-json={json_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"the benchmarks failed:\n{done.stdout}\n{done.stderr}")
    return " ".join(["python", *args])


def load(json_path: Path) -> list[dict]:
    """One row per benchmark: kind, label, impl, rate (frames or calls per second), size."""
    rows = []
    for bench in json.loads(json_path.read_text())["benchmarks"]:
        info = bench["extra_info"]
        rows.append(
            {
                "kind": info["kind"],
                "label": info["label"],
                "impl": info["impl"],
                "size": info["size"],
                "rate": info["frames"] / bench["stats"]["median"],
            }
        )
    return rows


def _format(rate: float, size: int, unit: str) -> str:
    if unit == "GB/s":
        return f"{rate * size / 1e9:.2f}"
    if rate >= 1e6:
        return f"{rate / 1e6:.2f} M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f} k"
    return f"{rate:.0f}"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def tables(rows: list[dict]) -> str:
    parts = []
    for kind, title, unit, ratios in SECTIONS:
        mine = [row for row in rows if row["kind"] == kind]
        if not mine:
            continue
        labels = list(dict.fromkeys(row["label"] for row in mine))
        impls = list(dict.fromkeys(row["impl"] for row in mine))
        by_key = {(row["label"], row["impl"]): row for row in mine}
        header = ["", *impls, *(column for column, _, _ in ratios)]
        body = []
        for label in labels:
            line = [label]
            for impl in impls:
                row = by_key.get((label, impl))
                line.append(_format(row["rate"], row["size"], unit) if row else "-")
            for _, ours, theirs in ratios:
                a, b = by_key.get((label, ours)), by_key.get((label, theirs))
                line.append(f"{a['rate'] / b['rate']:.2f}x" if a and b else "-")
            body.append(line)
        parts.append(f"{title}, {unit}:\n\n{_markdown(header, body)}")
    return "\n\n".join(parts)


def environment() -> str:
    cpu = cpu_model()
    try:
        gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout
        gcc = gcc.splitlines()[0]
    except (OSError, IndexError):
        gcc = "gcc unknown"
    packages = ", ".join(
        f"{name} {version(name)}"
        for name in ("Cython", "websockets", "wsproto", "wsaccel", "pytest-benchmark")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {gcc}, {packages}"
    )


INTRO = """\
The frame codec alone, without sockets: `bench/test_codec_bench.py` (pytest-benchmark) puts
fastws' Cython codec next to its pure-Python reference, websockets (its C `apply_mask` and its
sans-I/O `Protocol`), wsproto (`FrameProtocol`) and wsaccel. `python -m bench.codec_report`
runs it and prints the tables below; `--docs` rewrites them here (the text around them stays)."""


def write_docs(text: str, command: str) -> None:
    """Replace the generated part of the Codec section of docs/benchmarks.md, or add the
    section at the end (seeding the file with the server benchmarks' skeleton if needed)."""
    section = f"{BEGIN}\n\nCommand: `{command}`\n\nMachine: {environment()}\n\n{text}\n\n{END}"
    if DOCS.exists():
        current = DOCS.read_text()
    else:
        try:
            from bench.report import SKELETON as current
        except ImportError:
            current = "# Benchmarks\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        current = f"{head}{section}{tail}"
    else:
        current = current.rstrip("\n") + f"\n\n## Codec\n\n{INTRO}\n\n{section}\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(current)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the codec benchmarks and print tables.")
    parser.add_argument("--json", type=Path, help="read pytest-benchmark JSON instead of running")
    parser.add_argument("--wall", action="store_true", help="time with perf_counter (wall time)")
    parser.add_argument("--docs", action="store_true", help="rewrite docs/benchmarks.md's section")
    args = parser.parse_args(argv)
    if args.json:
        json_path, command = args.json, f"results read from {args.json}"
    else:
        json_path = Path(tempfile.mkdtemp()) / "codec.json"
        command = run_benchmarks(json_path, args.wall)
    text = tables(load(json_path))
    print(text)
    if args.docs:
        write_docs(text, command)


if __name__ == "__main__":
    main()
