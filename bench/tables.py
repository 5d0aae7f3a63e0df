"""Tables of a summary, as aligned text (terminal) or Markdown (docs)."""

from __future__ import annotations

from bench.registry import REFERENCE

CLIENT_BUSY_PCT = 90.0  # above this the load generator may be what limits the rate


def rate(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.0f}"


def number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def spread(entry: dict, fmt=rate) -> str:
    if entry["low"] is None:
        return "-"
    return f"{fmt(entry['low'])}-{fmt(entry['high'])}"


def _headline(entry: dict, fmt=rate) -> str:
    if entry["median"] is None:
        return "failed"
    busy = (entry.get("client_cpu_pct") or 0) >= CLIENT_BUSY_PCT
    return fmt(entry["median"]) + (" *" if busy else "")


def echo_rows(summary: list[dict], kinds=("echo", "tls")) -> tuple[list[str], list[list[str]]]:
    headers = [
        "case", "server", "msgs/s", "min-max", f"x{REFERENCE}", "srv CPU%", "cli CPU%",
        "other CPU%", "srv ns/msg", "p50 us", "p99 us", "p99.9 us",
    ]  # fmt: skip
    rows = [
        [
            e["case"], e["server"], _headline(e), spread(e), ratio(e["ratio"]),
            number(e["server_cpu_pct"]), number(e["client_cpu_pct"]),
            number(e["other_cpu_pct"]), number(e["server_ns_per_msg"]), number(e["p50_us"], 1),
            number(e["p99_us"], 1),
            number(e["p999_us"], 1),
        ]  # fmt: skip
        for e in summary
        if e["kind"] in kinds
    ]
    return headers, rows


def broadcast_rows(summary: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = [
        "case", "server", "deliveries/s", "min-max", f"x{REFERENCE}", "srv CPU%", "cli CPU%",
        "other CPU%", "srv ns/delivery",
    ]  # fmt: skip
    rows = [
        [
            e["case"], e["server"], _headline(e), spread(e), ratio(e["ratio"]),
            number(e["server_cpu_pct"]), number(e["client_cpu_pct"]),
            number(e["other_cpu_pct"]), number(e["server_ns_per_msg"]),
        ]  # fmt: skip
        for e in summary
        if e["kind"] == "broadcast"
    ]
    return headers, rows


def idle_rows(summary: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["case", "server", "bytes/conn", "min-max", f"x{REFERENCE}", "RSS before (MiB)"]
    kib = number
    rows = [
        [
            e["case"], e["server"], _headline(e, kib), spread(e, kib), ratio(e["ratio"]),
            number(e["rss_base_kib"] / 1024 if e["rss_base_kib"] else None, 1),
        ]  # fmt: skip
        for e in summary
        if e["kind"] == "idle"
    ]
    return headers, rows


def matrix(summary: list[dict], kinds=("echo",)) -> tuple[list[str], list[list[str]]]:
    """Cases down, servers across: median msgs/s with the ratio to the reference."""
    servers = list(dict.fromkeys(e["server"] for e in summary if e["kind"] in kinds))
    cases = list(dict.fromkeys(e["case"] for e in summary if e["kind"] in kinds))
    cells = {(e["case"], e["server"]): e for e in summary}
    rows = []
    for case in cases:
        row = [case]
        for server in servers:
            e = cells.get((case, server))
            if e is None:
                row.append("")
            elif e["median"] is None:
                row.append("failed")
            else:
                row.append(f"{_headline(e)} ({ratio(e['ratio'])})")
        rows.append(row)
    return ["case", *servers], rows


def text_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    previous_case = None
    for row in rows:
        if previous_case is not None and row[0] != previous_case:
            lines.append("")
        previous_case = row[0]
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    right = [i > 0 and h != "server" for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---:" if r else "---" for r in right) + "|")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def failures(summary: list[dict]) -> list[str]:
    return [f"{e['case']} / {e['server']}: {e['errors']}" for e in summary if e["errors"]]


def render_text(summary: list[dict]) -> str:
    """Everything a run measured, for the terminal and table.txt."""
    parts = []
    for title, builder in (
        ("Echo (msgs/s; latency = round trip)", lambda s: echo_rows(s, ("echo",))),
        ("TLS echo", lambda s: echo_rows(s, ("tls",))),
        ("Broadcast", broadcast_rows),
        ("Memory per idle connection (server RSS delta / connections)", idle_rows),
    ):
        headers, rows = builder(summary)
        if rows:
            parts.append(f"{title}\n\n{text_table(headers, rows)}")
    notes = [
        f"* client CPU >= {CLIENT_BUSY_PCT:.0f}%: the load generator may limit this rate",
        "other CPU%: what the rest of the machine used meanwhile (% of one core); when high, "
        "trust srv ns/msg more than msgs/s",
    ]
    problems = failures(summary)
    if problems:
        notes.append("Failures:\n  " + "\n  ".join(problems))
    return "\n\n".join(parts + notes) + "\n"
