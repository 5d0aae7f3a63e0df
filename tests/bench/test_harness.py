"""The benchmark harness end to end in its quick mode, plus its pure parts (no timing asserts)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cases, cli, report, stats
from bench.registry import SERVERS
from tests.support.paths import ROOT

QUICK_SERVERS = ["raw", "picows", "fastws"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    results = tmp_path_factory.mktemp("bench-results")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "run", "--quick", "--servers", *QUICK_SERVERS,
         "--results-dir", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    runs = sorted(results.glob("*/runs.csv"))
    assert runs, f"no results written:\n{done.stdout}\n{done.stderr}"
    return done, runs[-1].parent


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_quick_run_exits_cleanly(quick_run):
    done, _ = quick_run
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_quick_case_has_non_zero_results_for_every_capable_server(quick_run):
    _, out = quick_run
    rows = read_csv(out / "runs.csv")
    expected = {
        (case.name, server)
        for case in cases.QUICK
        for server in QUICK_SERVERS
        if SERVERS[server].supports(case.kind)
    }
    seen = {(r["case"], r["server"]) for r in rows}
    assert seen == expected
    for row in rows:
        label = f"{row['case']} / {row['server']}: {row['error']}"
        assert row["ok"] == "True", label
        assert float(row["value"]) > 0, label
        if row["kind"] in ("echo", "tls", "broadcast"):
            assert int(row["count"]) > 0, label
            assert float(row["server_cpu_s"]) > 0, label
            assert float(row["client_cpu_s"]) > 0, label
            assert float(row["other_cpu_pct"]) >= 0, label
        if row["kind"] in ("echo", "tls"):
            assert float(row["p50_us"]) > 0, label


def test_table_csv_and_metadata_are_written(quick_run):
    done, out = quick_run
    table = (out / "table.txt").read_text()
    for heading in ("Echo", "TLS echo", "Broadcast", "Memory per idle connection"):
        assert heading in table
        assert heading in done.stdout
    summary = read_csv(out / "summary.csv")
    assert {(e["case"], e["server"]) for e in summary} == {
        (r["case"], r["server"]) for r in read_csv(out / "runs.csv")
    }
    picows = [e for e in summary if e["server"] == "picows"]
    assert picows and all(float(e["ratio"]) == 1.0 for e in picows)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["command"].startswith("python -m bench run --quick")
    assert {"uvloop", "picows", "websockets", "aiohttp", "fastws"} <= set(meta["versions"])


def test_report_rewrites_only_the_generated_section(quick_run, tmp_path):
    _, out = quick_run
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        f"# Benchmarks\n\nintro stays\n\n{report.BEGIN}\nold numbers\n{report.END}\n\n"
        "## Codec\n\ncodec numbers stay\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench", "report", "--results", str(out), "--docs", str(docs),
         "--img-dir", str(tmp_path / "img")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = docs.read_text()
    assert "intro stays" in text and "## Codec\n\ncodec numbers stay\n" in text
    assert "old numbers" not in text
    generated = text.split(report.BEGIN)[1].split(report.END)[0]
    assert "| echo-64B-c1-w1 |" in generated and "python -m bench run --quick" in generated
    assert "![bench-echo.png](img/bench-echo.png)" in generated
    assert sorted(p.name for p in (tmp_path / "img").glob("*.png")) == sorted(
        ["bench-echo.png", "bench-latency.png", "bench-broadcast.png", "bench-memory.png",
         "bench-tls.png"]
    )  # fmt: skip


def test_report_creates_the_document_when_missing(quick_run, tmp_path):
    _, out = quick_run
    docs = tmp_path / "new" / "benchmarks.md"
    report.write(out, docs, tmp_path / "new" / "img")
    text = docs.read_text()
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    assert "locust -f bench/locustfile.py EchoUser --headless" in text
    assert "locust -f bench/locustfile.py HubUser --headless" in text


def test_summary_gives_median_spread_and_ratio_to_picows():
    def row(server, value):
        return {"case": "echo-64B-c1-w1", "kind": "echo", "server": server, "ok": True,
                "value": value, "error": ""}  # fmt: skip

    rows = [row("picows", 100), row("x", 150), row("picows", 300), row("x", 600), row("picows", 200)]
    rows.append({**row("x", 0), "ok": False, "error": "boom"})
    by_server = {e["server"]: e for e in stats.summarize(rows)}
    assert by_server["picows"]["median"] == 200 and by_server["picows"]["ratio"] == 1
    x = by_server["x"]
    assert (x["median"], x["low"], x["high"], x["ratio"]) == (375, 150, 600, 375 / 200)
    assert (x["runs"], x["failed"], x["errors"]) == (2, 1, "boom")


def test_case_selection_by_kind_name_and_glob():
    assert [c.kind for c in cli.select_cases(["broadcast"], quick=False)] == ["broadcast"]
    assert [c.name for c in cli.select_cases(["echo-64B-c1-*"], quick=False)] == [
        "echo-64B-c1-w1",
        "echo-64B-c1-w16",
    ]
    assert cli.select_cases(None, quick=True) == cases.QUICK
    with pytest.raises(SystemExit):
        cli.select_cases(["no-such-case"], quick=False)
