"""``python -m bench run|report|list``."""

from __future__ import annotations

import argparse
import csv
import datetime
import fnmatch
import json
import shlex
import sys
from pathlib import Path

from bench import cases as case_defs
from bench import loadgen, report, stats, system, tables
from bench.registry import REFERENCE, SERVERS, default_servers
from bench.runner import COLUMNS, Settings, run_one

RESULTS = Path(__file__).resolve().parent / "results"


def select_cases(patterns: list[str] | None, quick: bool) -> list[case_defs.Case]:
    """Cases by name, glob (``echo-64B-*``) or kind (``echo``, ``tls``, ``broadcast``, ``idle``)."""
    pool = case_defs.QUICK if quick else case_defs.FULL
    if not patterns:
        return list(pool)
    kinds = {c.kind for c in case_defs.ALL.values()}
    chosen = []
    for pattern in patterns:
        if pattern in kinds:
            matched = [c for c in pool if c.kind == pattern]
        else:
            matched = [c for c in case_defs.ALL.values() if fnmatch.fnmatch(c.name, pattern)]
        if not matched:
            raise SystemExit(f"no case matches {pattern!r}; `python -m bench list` shows them")
        chosen += [c for c in matched if c not in chosen]
    return chosen


def select_servers(names: list[str] | None) -> list[str]:
    if not names:
        return default_servers()
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown server(s) {unknown}; known: {', '.join(SERVERS)}")
    return names


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


SUMMARY_COLUMNS = [
    "case", "kind", "server", "runs", "failed", "median", "low", "high", "ratio",
    "server_cpu_pct", "client_cpu_pct", "other_cpu_pct", "server_ns_per_msg", "p50_us",
    "p99_us", "p999_us",
    "rss_base_kib", "errors",
]  # fmt: skip


def command_run(args: argparse.Namespace) -> int:
    system.raise_nofile_limit()
    selected = select_cases(args.cases, args.quick)
    servers = select_servers(args.servers)
    repeats = 1 if args.quick else args.repeats
    duration = args.duration if args.duration is not None else (1.0 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.results_dir) / stamp
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    binary, has_tls = loadgen.build()
    server_pin, client_pin = system.pinning()
    certfile = keyfile = None
    if any(c.kind == "tls" for c in selected):
        certfile, keyfile = system.self_signed_certificate(out_dir)
    settings = Settings(
        duration=duration,
        warmup=warmup,
        loadgen=binary,
        loadgen_tls=has_tls,
        logs=out_dir / "logs",
        certfile=certfile,
        keyfile=keyfile,
        server_pin=tuple(server_pin),
        client_pin=tuple(client_pin),
        broadcast_timeout=args.broadcast_timeout,
    )
    command = "python -m bench " + shlex.join(sys.argv[1:])
    meta = {
        "command": command,
        "started": stamp,
        "machine": system.machine(),
        "versions": system.versions(),
        "pinning": {"server": " ".join(server_pin) or "none", "client": " ".join(client_pin) or "none"},
        "repeats": repeats,
        "duration_s": duration,
        "warmup_s": warmup,
        "servers": servers,
        "cases": [c.name for c in selected],
    }
    if not server_pin:
        print("warning: fewer than 2 usable cores or no taskset: server and load are not pinned")
    print(f"results in {out_dir}")

    rows: list[dict] = []
    for case in selected:
        runnable = [name for name in servers if SERVERS[name].supports(case.kind)]
        for repeat in range(repeats):  # interleaved: A B C A B C ...
            for name in runnable:
                row = run_one(case, SERVERS[name], repeat, settings)
                rows.append(row)
                print(_progress(row), flush=True)
        write_csv(out_dir / "runs.csv", rows, COLUMNS)

    summary = stats.summarize(rows)
    write_csv(out_dir / "runs.csv", rows, COLUMNS)
    write_csv(out_dir / "summary.csv", summary, SUMMARY_COLUMNS)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    text = tables.render_text(summary)
    (out_dir / "table.txt").write_text(text)
    print()
    print(text)
    if REFERENCE not in servers:
        print(f"(no {REFERENCE} in this run: ratios are empty)")
    if args.report:
        report.write(out_dir, Path(args.docs), Path(args.img_dir))
        print(f"wrote {args.docs} and plots under {args.img_dir}")
    return 0 if all(r["ok"] for r in rows) else 1


def _progress(row: dict) -> str:
    label = f"{row['case']:<24} {row['server']:<12} #{row['repeat']}"
    if not row["ok"]:
        return f"{label}  FAILED: {row['error']}"
    if row["kind"] == "idle":
        return f"{label}  {row['value']:,.0f} bytes/conn"
    unit = "deliveries/s" if row["kind"] == "broadcast" else "msgs/s"
    return (
        f"{label}  {row['value']:>12,.0f} {unit}  server {row['server_cpu_pct']:.0f}% CPU, "
        f"{row['server_ns_per_msg']:,.0f} ns/msg  client {row['client_cpu_pct']:.0f}%  "
        f"others {row['other_cpu_pct']:.0f}%"
    )


def command_report(args: argparse.Namespace) -> int:
    source = Path(args.results) if args.results else report.latest(Path(args.results_dir))
    report.write(source, Path(args.docs), Path(args.img_dir))
    print(f"wrote {args.docs} and plots under {args.img_dir} from {source}")
    return 0


def command_list(_args: argparse.Namespace) -> int:
    print("cases (full):  " + " ".join(c.name for c in case_defs.FULL))
    print("cases (quick): " + " ".join(c.name for c in case_defs.QUICK))
    for spec in SERVERS.values():
        print(f"server {spec.name:<12} kinds: {', '.join(sorted(spec.kinds))}")
    print("default servers now: " + " ".join(default_servers()))
    return 0


def command_scale(args: argparse.Namespace) -> int:
    from bench import scale, scale_report

    settings = scale.Settings(
        clients=args.clients,
        workers=args.workers,
        channels=args.channels,
        connect_rate=args.connect_rate,
        broker=args.broker,
        soak_seconds=args.soak,
        storms=not args.no_storms,
        storm_rate=args.storm_rate,
        storm_timeout=args.storm_timeout,
        phases=tuple(name for name in args.phases.split(",") if name) if args.phases else (),
    )
    results = scale.run(settings)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.results_dir) / f"scale-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"wrote {out}")
    failed = results.get("failed")
    if failed is not None:
        print(f"scale: {failed['phase']} failed: {failed['error']}", file=sys.stderr)
    command = "python -m bench " + shlex.join(_without_outputs(sys.argv[1:]))
    try:
        scale_report.write(results, Path(args.docs), Path(args.img_dir), command)
    except KeyError as missing:
        print(f"scale: no report, the run has no {missing} (see {out})", file=sys.stderr)
        return 1
    print(f"wrote {args.docs} and plots under {args.img_dir}")
    return 0 if failed is None else 1


def _without_outputs(argv: list[str]) -> list[str]:
    """The arguments that decide what a scale run measures: where it writes its files
    (results, report, plots) is left out of the command the report names."""
    outputs = ("--results-dir", "--docs", "--img-dir")
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in outputs:
            skip = True
        elif not arg.startswith(tuple(name + "=" for name in outputs)):
            kept.append(arg)
    return kept


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="measure (interleaving servers, repeats) and print tables")
    run.add_argument("--cases", nargs="+", help="case names, globs or kinds (default: all)")
    run.add_argument("--servers", nargs="+", help=f"default: all available ({', '.join(SERVERS)})")
    run.add_argument("--repeats", type=int, default=3)
    run.add_argument("--duration", type=float, help="measured seconds per echo run (default 5)")
    run.add_argument("--warmup", type=float, help="seconds before measuring (default 1)")
    run.add_argument("--broadcast-timeout", type=float, default=60.0)
    run.add_argument("--quick", action="store_true", help="smoke test: small cases, 1 s, 1 repeat")
    run.add_argument("--report", action="store_true", help="also rewrite docs and plots")
    run.set_defaults(handler=command_run)

    rep = sub.add_parser("report", help="rewrite the generated part of docs/benchmarks.md")
    rep.add_argument("--results", help="a results directory (default: the latest)")
    rep.set_defaults(handler=command_report)

    for p in (run, rep):
        p.add_argument("--results-dir", default=str(RESULTS))
        p.add_argument("--docs", default=str(repo / "docs" / "benchmarks.md"))
        p.add_argument("--img-dir", default=str(repo / "docs" / "img"))

    sub.add_parser("list", help="show cases and servers").set_defaults(handler=command_list)

    sc = sub.add_parser("scale", help="the hub with 100,000 clients; writes docs/scale.md")
    sc.add_argument("--clients", type=int, default=100_000)
    sc.add_argument("--workers", type=int, default=6)
    sc.add_argument("--channels", type=int, default=100)
    sc.add_argument("--connect-rate", type=float, default=5000.0, help="new connections/s offered")
    sc.add_argument("--broker", choices=("redis", "memory"), default="redis")
    sc.add_argument("--soak", type=float, default=600.0, help="soak seconds (0: none)")
    sc.add_argument("--no-storms", action="store_true", help="skip the reconnect storms")
    sc.add_argument("--storm-timeout", type=float, default=600.0, help="seconds a storm waits for every client")
    sc.add_argument("--phases", default="", help="only these phases, e.g. connect,storm_hub (default: all)")
    sc.add_argument(
        "--storm-rate", type=float, default=None,
        help="broadcasts/s during the storms (default: a quarter of the measured delivery rate, at most 2)",
    )  # fmt: skip
    sc.add_argument("--results-dir", default=str(RESULTS))
    sc.add_argument("--docs", default=str(repo / "docs" / "scale.md"))
    sc.add_argument("--img-dir", default=str(repo / "docs" / "img"))
    sc.set_defaults(handler=command_scale)
    args = parser.parse_args(argv)
    return args.handler(args)
