"""The conformance machinery itself, on made-up reports: verdict counting, the pass rule,
the allow-list, the wstest output parsing and the docs/conformance.md renderer.

Fast and without wstest, so a broken pass rule shows up in every test run, not only
in the slow Autobahn runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conformance import autobahn, report
from tests.conformance.autobahn import CaseResult

OK = CaseResult("OK", "OK", 2, 1000)


def made_up_results(overrides: dict[str, CaseResult] | None = None) -> dict[str, CaseResult]:
    results = {case: OK for case in ("1.1.1", "1.1.2", "2.1", "6.4.1", "9.10.1", "12.1.1")}
    results.update(overrides or {})
    return results


def test_summarize_counts_per_behavior_and_category() -> None:
    results = made_up_results(
        {"6.4.1": CaseResult("NON-STRICT", "OK"), "12.1.1": CaseResult("FAILED", "WRONG CODE")}
    )
    summary = autobahn.summarize(results)
    assert summary.counts["OK"] == 4
    assert summary.counts["NON-STRICT"] == 1
    assert summary.counts["FAILED"] == 1
    assert summary.by_category["1"]["OK"] == 2
    assert summary.by_category["12"]["FAILED"] == 1
    assert list(summary.not_ok) == ["6.4.1", "12.1.1"]


def test_unknown_verdict_counts_as_failed() -> None:
    summary = autobahn.summarize({"1.1.1": CaseResult("WRONG CODE", "WRONG CODE")})
    assert summary.counts["FAILED"] == 1


def test_case_ids_sort_by_number() -> None:
    ids = ["9.10.1", "9.2.1", "10.1.1", "9.1.1"]
    assert sorted(ids, key=autobahn.case_key) == ["9.1.1", "9.2.1", "9.10.1", "10.1.1"]


@pytest.mark.parametrize(
    ("verdict", "allowed", "fails"),
    [
        (CaseResult("OK", "OK"), {}, False),
        (CaseResult("INFORMATIONAL", "OK"), {}, False),
        (CaseResult("NON-STRICT", "OK"), {"6.4.1": "reason"}, False),
        (CaseResult("NON-STRICT", "OK"), {}, True),
        (CaseResult("NON-STRICT", "OK"), {"6.4.2": "another case"}, True),
        (CaseResult("UNIMPLEMENTED", "OK"), {"6.4.1": "not for this"}, True),
        (CaseResult("FAILED", "WRONG CODE"), {"6.4.1": "not for this"}, True),
        (CaseResult("MISSING", "MISSING"), {}, True),
    ],
)
def test_pass_rule(verdict: CaseResult, allowed: dict[str, str], fails: bool) -> None:
    results = made_up_results()
    results["6.4.1"] = verdict
    problems = autobahn.verdict_problems(autobahn.summarize(results), allowed)
    assert bool(problems) == fails, problems
    if fails:
        assert "6.4.1" in problems[0]


def test_report_index_marks_cases_without_a_verdict_missing(tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    entry = {"behavior": "OK", "behaviorClose": "OK", "duration": 3, "remoteCloseCode": 1000}
    index.write_text(json.dumps({"fastws": {"1.1.2": entry, "1.1.1": entry}}))
    results = autobahn.read_report(index, "fastws", expected=["1.1.1", "1.1.2", "1.1.3"])
    assert list(results) == ["1.1.1", "1.1.2", "1.1.3"]
    assert results["1.1.1"] == CaseResult("OK", "OK", 3, 1000)
    assert results["1.1.3"].behavior == "MISSING"
    with pytest.raises(autobahn.AutobahnError, match="no agent 'other'"):
        autobahn.read_report(index, "other")
    with pytest.raises(autobahn.AutobahnError, match="no report index"):
        autobahn.read_report(tmp_path / "absent.json", "fastws")


def test_allowlist_needs_a_reason_per_case(tmp_path: Path) -> None:
    path = tmp_path / "allow.toml"
    path.write_text('[server]\n"6.4.1" = "fails fast per fragment"\n[client]\n')
    assert autobahn.load_allowlist(path) == {
        "server": {"6.4.1": "fails fast per fragment"},
        "client": {},
    }
    path.write_text('[server]\n"6.4.1" = " "\n')
    with pytest.raises(autobahn.AutobahnError, match="needs a reason"):
        autobahn.load_allowlist(path)


def test_project_allowlist_is_well_formed() -> None:
    allowed = autobahn.load_allowlist()
    assert set(allowed) == {"server", "client"}


def test_wstest_output_becomes_progress_and_case_list(tmp_path: Path) -> None:
    lines = [
        "Autobahn Fuzzing WebSocket Client (Autobahn Testsuite Version 25.10.1)",
        "Ok, will run 4 test cases against 1 servers",
        "Cases = [u'2.1', u'1.1.2', u'1.1.1', u'10.1.1']",
        "Running test case ID 1.1.1 for agent fastws from peer tcp4:127.0.0.1:1",
        "Running test case ID 1.1.2 for agent fastws from peer tcp4:127.0.0.1:1",
        "Running test case ID 2.1 for agent fastws from peer tcp4:127.0.0.1:1",
    ]
    process = subprocess.Popen(
        ["printf", "%s\\n", *lines], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    progress: list[str] = []
    output = autobahn._WstestOutput(process, tmp_path / "wstest.log", "run", progress.append)
    process.wait(10)
    output.join()
    assert output.expected == ["1.1.1", "1.1.2", "2.1", "10.1.1"]
    assert output.done == 3
    assert progress[0] == "run: 4 cases to run"
    assert [line.split(" (")[0] for line in progress[1:]] == ["run: case 1.1.1", "run: case 2.1"]
    assert (tmp_path / "wstest.log").read_text().splitlines() == lines


def made_up_summary(side: str, backend: str, results: dict[str, CaseResult]) -> dict:
    summary = autobahn.summarize(results)
    return {
        "side": side,
        "backend": backend,
        "autobahn": autobahn.AUTOBAHN_VERSION,
        "seconds": 75.0,
        "finished": "2026-01-02T03:04:05Z",
        "counts": summary.counts,
        "by_category": summary.by_category,
        "cases": {case: result.__dict__ for case, result in results.items()},
    }


def test_report_renders_tables_reasons_and_runs_not_done() -> None:
    results = made_up_results()
    results["6.4.1"] = CaseResult("NON-STRICT", "OK")
    summaries = {
        ("server", "cython"): made_up_summary("server", "cython", results),
        ("client", "python"): made_up_summary("client", "python", made_up_results()),
    }
    allowlist = {"server": {"6.4.1": "invalid UTF-8 caught per fragment"}, "client": {}}
    text = report.render(summaries, allowlist)
    assert "| server, cython | 5 | 1 | 0 | 0 | 0 | 0 | 6 | 1m15s | 2026-01-02 |" in text
    assert "| server, python | - | - | - | - | - | - | not run | | |" in text
    assert "| 12 Compression (payloads) | 1 | 0 | 0 | 0 | 0 | 0 |" in text
    assert "- 6.4.1: NON-STRICT (accepted, see below)" in text
    assert "- server 6.4.1: invalid UTF-8 caught per fragment" in text
    text = report.render(summaries, {"server": {}, "client": {}})
    assert "- 6.4.1: NON-STRICT (NOT ACCEPTED: the run fails)" in text
    assert "None is listed." in text


def test_report_keeps_the_hand_written_section() -> None:
    kept = f"{report.KEPT_HEADING}\n\nmeasured by hand\n"
    document = f"# Conformance\n\nold intro\n\n{kept}\n## Results\n\nold tables\n"
    assert report.kept_section(document) == kept
    assert report.kept_section("# Conformance\n\n## Results\n") == ""
    summaries = {("server", "cython"): made_up_summary("server", "cython", made_up_results())}
    text = report.render(summaries, {"server": {}, "client": {}}, report.kept_section(document))
    assert text.count(report.KEPT_HEADING) == 1
    assert text.index("measured by hand") < text.index("## Results")
    assert "old tables" not in text
