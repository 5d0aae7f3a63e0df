"""Plots (docs/img/) and the generated section of docs/benchmarks.md, from a results directory."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bench import stats, tables
from bench.registry import REFERENCE

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

SKELETON = f"""# Benchmarks

fastws is measured side by side with other Python WebSocket servers on the same machine, with
the same load, by `python -m bench`.

## How it is measured

- Every server is a small script in `bench/servers/`, started as its own process on uvloop,
  pinned with `taskset` to core 1; the load generator runs on core 0. Servers under test:
  fastws (callback API, `async for` API, and the callback API with the pure-Python codec
  and connection, `FASTWS_PURE=1`), picows (a `WSListener` echoing with `transport.send`), websockets (asyncio
  server, `async for` echo, `compression=None`), aiohttp (`web.WebSocketResponse`, compression
  off) and a raw TCP echo on uvloop, the ceiling: no WebSocket at all.
- The load comes from `bench/loadgen.c`, built with `gcc -O2` on first use: epoll, pre-masked
  binary frames, a window of W messages in flight per connection, header-only parsing of the
  replies. A Python generator would saturate near 160k msgs/s and measure itself. A `*` next to
  a rate marks runs where the generator used 90% or more of its core.
- Echo: 64 B, 1 KiB and 64 KiB messages over 1 or 100 connections with 1 or 16 messages in
  flight; after a warm-up, a fixed measured period. Latency is the round trip of each message
  (send queued to echo parsed); with 16 in flight it includes queueing.
- Broadcast: 1,000 receiving connections; a control connection sends `broadcast N SIZE` and the
  server sends N messages of SIZE bytes to every other connection (fastws with
  `fastws.broadcast`, websockets with its `broadcast` helper, picows and aiohttp with a loop of
  sends). Rate = deliveries / time from the command to the last delivery.
- Memory: server RSS after K idle connections minus RSS before, divided by K.
- Server CPU is utime+stime of the server process over the measured period; `srv ns/msg` is
  that CPU time per echoed message (per delivery for broadcast). Client CPU comes from the
  generator's `getrusage`.
- `other CPU%` is what the rest of the machine used meanwhile (from /proc/stat, minus the
  server and the harness with its load generator). On a busy machine rates drop but CPU time per
  message barely moves, so `srv ns/msg` is then the fairer comparison.
- Servers are interleaved (A B C A B C ...) over the repeats; tables give the median, the
  min-max spread and the ratio to {REFERENCE}.

## Running

```sh
python -m bench run                                   # everything, 3 repeats, 5 s each
python -m bench run --cases echo --servers fastws picows --repeats 5
python -m bench run --quick                           # smoke test: small cases, 1 s, 1 repeat
python -m bench report                                # rewrite the section below from the latest run
python -m bench list                                  # cases and servers
```

Raw results (every run, CSV, server logs) land in `bench/results/<timestamp>/`.

## Load test with locust

`bench/locustfile.py` holds WebSocket users for [locust](https://locust.io) that report every
round trip as a request of type `WS`. Against the echo server, and against the hub:

```sh
python -m fastws echo --port 9001 &
locust -f bench/locustfile.py EchoUser --headless -u 100 -r 20 -t 60s --host ws://127.0.0.1:9001 --only-summary
python -m fastws --port 8080 --insecure &
locust -f bench/locustfile.py HubUser --headless -u 100 -r 20 -t 60s --host ws://127.0.0.1:8080 --only-summary
```

## Results

{BEGIN}
{END}
"""


def latest(results_dir: Path) -> Path:
    candidates = sorted(p.parent for p in results_dir.glob("*/runs.csv"))
    if not candidates:
        raise SystemExit(f"no results under {results_dir}: run `python -m bench run` first")
    return candidates[-1]


def load(source: Path) -> tuple[list[dict], dict]:
    with (source / "runs.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["ok"] = row["ok"] == "True"
    return rows, json.loads((source / "meta.json").read_text())


# ---- plots ----


def _grouped_bars(ax, summary: list[dict], kinds: tuple[str, ...], log: bool) -> None:
    cases = list(dict.fromkeys(e["case"] for e in summary if e["kind"] in kinds))
    servers = list(dict.fromkeys(e["server"] for e in summary if e["kind"] in kinds))
    cells = {(e["case"], e["server"]): e for e in summary}
    width = 0.8 / max(len(servers), 1)
    for i, server in enumerate(servers):
        xs, heights, lows, highs = [], [], [], []
        for j, case in enumerate(cases):
            e = cells.get((case, server))
            if e and e["median"] is not None:
                xs.append(j + (i - (len(servers) - 1) / 2) * width)
                heights.append(e["median"])
                lows.append(e["median"] - e["low"])
                highs.append(e["high"] - e["median"])
        ax.bar(xs, heights, width, label=server, yerr=[lows, highs], capsize=2)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=30, ha="right", fontsize=8)
    if log:
        ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(servers), 4))


def _latency(ax, summary: list[dict]) -> None:
    entries = [e for e in summary if e["kind"] == "echo" and e["case"].endswith("-w1")]
    cases = list(dict.fromkeys(e["case"] for e in entries))
    servers = list(dict.fromkeys(e["server"] for e in entries))
    cells = {(e["case"], e["server"]): e for e in entries}
    width = 0.8 / max(len(servers), 1)
    for i, server in enumerate(servers):
        xs, p50, p99 = [], [], []
        for j, case in enumerate(cases):
            e = cells.get((case, server))
            if e and e["p50_us"] is not None:
                xs.append(j + (i - (len(servers) - 1) / 2) * width)
                p50.append(e["p50_us"])
                p99.append(e["p99_us"])
        ax.bar(xs, p99, width, color=f"C{i}", alpha=0.35)
        ax.bar(xs, p50, width, color=f"C{i}", label=server)
    ax.set_xticks(range(len(cases)))
    ax.set_xticklabels(cases, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("round trip, us (solid p50, pale p99)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(servers), 4), loc="upper left", bbox_to_anchor=(0, -0.25))


PLOTS = {
    "bench-echo.png": ("Echo throughput (msgs/s, median, min-max)", ("echo",), "msgs/s", True),
    "bench-broadcast.png": ("Broadcast (deliveries/s)", ("broadcast",), "deliveries/s", False),
    "bench-memory.png": ("Memory per idle connection", ("idle",), "bytes / connection", False),
    "bench-tls.png": ("TLS echo (msgs/s)", ("tls",), "msgs/s", True),
}


def plot(summary: list[dict], img_dir: Path) -> list[str]:
    """Write the PNGs that have data; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (title, kinds, ylabel, log) in PLOTS.items():
        if not any(e["kind"] in kinds and e["median"] is not None for e in summary):
            continue
        cases = {e["case"] for e in summary if e["kind"] in kinds}
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cases) + 3), 4.5))
        _grouped_bars(ax, summary, kinds, log)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        fig.tight_layout()
        fig.savefig(img_dir / name, dpi=110)
        plt.close(fig)
        written.append(name)
    if any(e["kind"] == "echo" and e["case"].endswith("-w1") and e["p50_us"] for e in summary):
        fig, ax = plt.subplots(figsize=(9, 5.5))
        _latency(ax, summary)
        ax.set_title("Echo latency, one message in flight")
        fig.tight_layout()
        fig.savefig(img_dir / "bench-latency.png", dpi=110)
        plt.close(fig)
        written.append("bench-latency.png")
    return written


# ---- Markdown ----


def _image(img_dir: Path, docs: Path, name: str) -> str:
    try:
        relative = (img_dir / name).resolve().relative_to(docs.resolve().parent)
    except ValueError:
        relative = (img_dir / name).resolve()
    return f"![{name}]({relative.as_posix()})"


def generated_section(rows: list[dict], meta: dict, images: list[str], docs: Path, img_dir: Path) -> str:
    summary = stats.summarize(rows)
    machine = meta["machine"]
    out = [
        f"_Generated by `python -m bench report` from the run started {meta['started']}; "
        "edit bench/report.py, not this section._",
        "",
        f"Command: `{meta['command']}` ({meta['repeats']} repeat(s), {meta['warmup_s']:g} s "
        f"warm-up, {meta['duration_s']:g} s measured per echo run)",
        "",
        f"Machine: {machine['nproc']} x {machine['cpu']}, Linux {machine['kernel']}, "
        f"Python {machine['python']}; server pinned with `{meta['pinning']['server']}`, load "
        f"generator with `{meta['pinning']['client']}`.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
    ]

    def section(title: str, table: tuple[list[str], list[list[str]]], image: str | None, note: str = "") -> None:
        headers, body = table
        if not body:
            return
        out.extend([f"### {title}", ""])
        if note:
            out.extend([note, ""])
        out.extend([tables.markdown_table(headers, body), ""])
        if image and image in images:
            out.extend([_image(img_dir, docs, image), ""])

    section(
        f"Echo throughput (median msgs/s, ratio to {REFERENCE})",
        tables.matrix(summary, ("echo",)),
        "bench-echo.png",
    )
    section(
        "Echo in detail",
        tables.echo_rows(summary, ("echo",)),
        "bench-latency.png",
        "Latency columns are round trips in microseconds; with 16 messages in flight they "
        "include queueing.",
    )
    section("Broadcast", tables.broadcast_rows(summary), "bench-broadcast.png")
    section(
        "Memory per idle connection",
        tables.idle_rows(summary),
        "bench-memory.png",
        "Server RSS after opening the connections minus RSS before, per connection.",
    )
    section("TLS echo", tables.echo_rows(summary, ("tls",)), "bench-tls.png")
    problems = tables.failures(summary)
    if problems:
        out.extend(["### Failed runs", "", *(f"- {p}" for p in problems), ""])
    out.append(
        f"`*` client CPU >= {tables.CLIENT_BUSY_PCT:.0f}%: the load generator may limit that rate. "
        "`other CPU%`: CPU used by the rest of the machine during the run (% of one core); "
        "when it is high the rates are disturbed and `srv ns/msg` is the fairer comparison."
    )
    return "\n".join(out)


def rewrite(docs: Path, generated: str) -> None:
    """Replace what lies between the markers, keeping every other section as it is."""
    text = docs.read_text() if docs.exists() else SKELETON
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(f"{head}{BEGIN}\n{generated}\n{END}{tail}")


def write(source: Path, docs: Path, img_dir: Path) -> None:
    rows, meta = load(source)
    images = plot(stats.summarize(rows), img_dir)
    rewrite(docs, generated_section(rows, meta, images, docs, img_dir))
