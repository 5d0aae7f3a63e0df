"""Medians, spreads and ratios to the reference server, per case and server."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from bench.cases import ALL, Case
from bench.registry import REFERENCE

AVERAGED = (
    "server_cpu_pct", "client_cpu_pct", "other_cpu_pct", "server_ns_per_msg",
    "p50_us", "p99_us", "p999_us",
)  # fmt: skip


def _median(values: Iterable) -> float | None:
    numbers = [float(v) for v in values if v not in ("", None)]
    return statistics.median(numbers) if numbers else None


def summarize(rows: list[dict]) -> list[dict]:
    """One entry per (case, server), in the order they were first run.

    ``median``/``low``/``high`` are of the case's headline metric; ``ratio`` divides the
    median by the reference server's median for the same case.
    """
    order: list[tuple[str, str]] = []
    for row in rows:
        key = (row["case"], row["server"])
        if key not in order:
            order.append(key)
    summary = []
    for case_name, server in order:
        runs = [r for r in rows if r["case"] == case_name and r["server"] == server]
        good = [r for r in runs if r["ok"] in (True, "True")]
        values = [float(r["value"]) for r in good]
        entry = {
            "case": case_name,
            "kind": runs[0]["kind"],
            "server": server,
            "runs": len(good),
            "failed": len(runs) - len(good),
            "median": statistics.median(values) if values else None,
            "low": min(values) if values else None,
            "high": max(values) if values else None,
            "errors": "; ".join(sorted({r["error"] for r in runs if r["error"]})),
        }
        for column in AVERAGED:
            entry[column] = _median(r.get(column) for r in good)
        entry["rss_base_kib"] = _median(r.get("rss_base_kib") for r in good)
        summary.append(entry)
    reference = {e["case"]: e["median"] for e in summary if e["server"] == REFERENCE}
    for entry in summary:
        ref = reference.get(entry["case"])
        entry["ratio"] = entry["median"] / ref if ref and entry["median"] is not None else None
    return summary


def case_of(name: str) -> Case:
    return ALL[name]
