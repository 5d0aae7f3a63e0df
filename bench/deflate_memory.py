"""Memory that permessage-deflate holds per connection, measured as RSS.

zlib allocates in C, so tracemalloc cannot see it: this script creates N
compressors or decompressors, pushes traffic through each, and reads the
growth of the process's resident set from /proc/self/statm. zlib's buffers are
touched (so resident) only as data flows: the "first" columns are after one
10 KB message, the "busy" ones after 128 KB, enough to fill every buffer. Each configuration runs in a fresh
subprocess so that freed memory of one does not hide the cost of the next.

    python bench/deflate_memory.py [--count 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zlib

CONFIGS = [(15, 8), (15, 9), (15, 1), (14, 8), (12, 8), (12, 4), (10, 8), (9, 8), (9, 1)]
LINE = b"%d: the quick brown fox jumps over the lazy dog\n"
SMALL = b"".join(LINE % i for i in range(200))  # ~10 KB
LARGE = b"".join(LINE % i for i in range(2600))  # ~128 KB


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(kind: str, bits: int, mem_level: int, count: int, message: bytes) -> float:
    """Bytes of RSS per object of ``kind`` ("deflate" or "inflate") after ``message``."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -bits, mem_level)
    payload = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
    objects = []
    before = rss_bytes()
    for _ in range(count):
        if kind == "deflate":
            obj = zlib.compressobj(6, zlib.DEFLATED, -bits, mem_level)
            obj.compress(message)
            obj.flush(zlib.Z_SYNC_FLUSH)
        else:
            obj = zlib.decompressobj(-bits)
            obj.decompress(payload)
        objects.append(obj)
    return (rss_bytes() - before) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # "kind,bits,mem_level,size": child
    args = parser.parse_args()
    if args.one:
        kind, bits, mem_level, size = args.one.split(",")
        message = SMALL if size == "small" else LARGE
        print(json.dumps(measure(kind, int(bits), int(mem_level), args.count, message)))
        return

    def kib(kind: str, bits: int, mem_level: int, size: str) -> float:
        spec = f"{kind},{bits},{mem_level},{size}"
        cmd = [sys.executable, __file__, "--count", str(args.count), "--one", spec]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out) / 1024

    print(f"zlib {zlib.ZLIB_RUNTIME_VERSION}, {args.count} objects per cell, KiB of RSS each")
    print(
        "| window bits | memLevel | compressor first | compressor busy "
        "| decompressor first | decompressor busy | pair busy |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for bits, mem_level in CONFIGS:
        cells = [
            kib("deflate", bits, mem_level, "small"),
            kib("deflate", bits, mem_level, "large"),
            kib("inflate", bits, mem_level, "small"),
            kib("inflate", bits, mem_level, "large"),
        ]
        cells.append(cells[1] + cells[3])
        print(f"| {bits} | {mem_level} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
