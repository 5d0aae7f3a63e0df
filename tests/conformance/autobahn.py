"""Runs the Autobahn|Testsuite (wstest) against fastws, as a server and as a client.

wstest is Python 2 code, so it lives in its own virtualenv, ``.autobahn/venv``,
which ``ensure_env()`` makes on first use from the pinned
``requirements-autobahn.txt``. Each run streams short progress lines (wstest's
own output goes to ``wstest.log`` in the run's directory, next to the spec and
the HTML/JSON reports) and returns one ``CaseResult`` per case.

Command line (from the repository root)::

    python -m tests.conformance.autobahn env
    python -m tests.conformance.autobahn server --url ws://127.0.0.1:9001
    python -m tests.conformance.autobahn client \\
        --command "python -m tests.conformance.autobahn_client --port {port}"
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.conformance.processes import stop_process, wait_for_port
from tests.support.net import free_port
from tests.support.paths import ROOT, TEST_OUTPUT

AUTOBAHN_HOME = ROOT / ".autobahn"
TOOLS_VENV = AUTOBAHN_HOME / "tools"
VENV = AUTOBAHN_HOME / "venv"
VENV_PYTHON = VENV / "bin" / "python"
READY_MARKER = VENV / "fastws-ready"
REQUIREMENTS = Path(__file__).with_name("requirements-autobahn.txt")
WSTEST_LAUNCHER = Path(__file__).with_name("wstest_loopback.py")
ALLOWLIST = Path(__file__).with_name("autobahn-non-strict.toml")
AUTOBAHN_VERSION = "25.10.1"  # keep in step with requirements-autobahn.txt
VIRTUALENV_REQUIREMENT = "virtualenv<20.22"  # the last releases that still make 2.7 envs
DEFAULT_OUTPUT = TEST_OUTPUT / "autobahn"

BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "MISSING")
"""Autobahn's verdicts, best first; MISSING marks a case that never got a verdict."""

CATEGORIES = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 handling",
    "7": "Close handling",
    "8": "Misc",
    "9": "Limits/performance",
    "10": "Auto-fragmentation",
    "12": "Compression (payloads)",
    "13": "Compression (parameters)",
}

Progress = Callable[[str], None]


class AutobahnError(RuntimeError):
    """The Autobahn machinery itself could not run (not a conformance failure)."""


@dataclass(frozen=True)
class CaseResult:
    """Autobahn's verdict on one case."""

    behavior: str
    behavior_close: str
    duration_ms: int | None = None
    remote_close_code: int | None = None


@dataclass
class Summary:
    """Verdict counts of one run, overall and per category, and the cases that were not OK."""

    counts: dict[str, int]
    by_category: dict[str, dict[str, int]]
    not_ok: dict[str, CaseResult] = field(default_factory=dict)

    def cases_with(self, behavior: str) -> list[str]:
        return [case for case, result in self.not_ok.items() if result.behavior == behavior]


def case_key(case_id: str) -> tuple[int, ...]:
    """Sorts "9.10.2" after "9.2.1", as the numbers mean."""
    return tuple(int(part) for part in case_id.split("."))


# --------------------------------------------------------------------- environment


def find_python2() -> Path:
    """The Python 2.7 interpreter that wstest needs, or AutobahnError naming what was tried."""
    candidates = [
        os.environ.get("FASTWS_PYTHON2"),
        str(Path.home() / ".pyenv" / "versions" / "2.7.18" / "bin" / "python"),
        shutil.which("python2.7"),
        shutil.which("python2"),
    ]
    tried = []
    for candidate in candidates:
        if not candidate:
            continue
        tried.append(candidate)
        if not os.access(candidate, os.X_OK):
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "2.7":
            return Path(candidate)
    raise AutobahnError(
        "wstest needs a Python 2.7 interpreter and none was found (tried: "
        f"{', '.join(tried) or 'nothing'}). Install one, e.g. `pyenv install 2.7.18`, "
        "or point FASTWS_PYTHON2 at it."
    )


def _run_setup_step(command: Sequence[str | os.PathLike[str]], what: str) -> None:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        tail = "\n".join(output[-25:])
        raise AutobahnError(
            f"{what} failed (exit {done.returncode}): {shlex.join(map(str, command))}\n{tail}"
        )


def _requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_env(progress: Progress = print) -> Path:
    """Makes the Autobahn virtualenv unless it is already complete; returns its Python.

    Safe to call from several processes at once (a file lock serializes them) and
    cheap once done. A half-made or outdated env is removed and made again.
    """
    if READY_MARKER.is_file() and READY_MARKER.read_text() == _requirements_digest():
        return VENV_PYTHON
    AUTOBAHN_HOME.mkdir(parents=True, exist_ok=True)
    with open(AUTOBAHN_HOME / "setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if READY_MARKER.is_file() and READY_MARKER.read_text() == _requirements_digest():
            return VENV_PYTHON
        python2 = find_python2()
        virtualenv = TOOLS_VENV / "bin" / "virtualenv"
        if not virtualenv.exists():
            progress(f"autobahn: creating {TOOLS_VENV} with {VIRTUALENV_REQUIREMENT}")
            shutil.rmtree(TOOLS_VENV, ignore_errors=True)
            _run_setup_step([sys.executable, "-m", "venv", TOOLS_VENV], "creating the tools venv")
            _run_setup_step(
                [TOOLS_VENV / "bin" / "pip", "install", "-q", VIRTUALENV_REQUIREMENT],
                f"installing {VIRTUALENV_REQUIREMENT}",
            )
        progress(f"autobahn: creating {VENV} (Python 2.7 from {python2})")
        shutil.rmtree(VENV, ignore_errors=True)
        _run_setup_step([virtualenv, "-q", "-p", python2, VENV], "creating the Python 2.7 venv")
        _run_setup_step(
            [VENV / "bin" / "pip", "install", "-q", "-r", REQUIREMENTS],
            "installing the Autobahn|Testsuite",
        )
        _run_setup_step([VENV_PYTHON, "-c", "import autobahntestsuite.wstest"], "importing wstest")
        READY_MARKER.write_text(_requirements_digest())
        progress("autobahn: environment ready")
    return VENV_PYTHON


# --------------------------------------------------------------------- wstest processes

_RUNNING = re.compile(r"Running test case ID (\S+) for agent")
_CASES = re.compile(r"^Cases = (\[.*\])\s*$")
_CONNECT_FAILED = re.compile(r"^Connection to .* failed")


class _WstestOutput:
    """Reads wstest's output into its log and turns it into sparse progress lines."""

    def __init__(self, process: subprocess.Popen, log_path: Path, label: str, progress: Progress):
        self.process = process
        self.label = label
        self.progress = progress
        self.expected: list[str] | None = None
        self.ready = threading.Event()
        self.done = 0
        self.started = time.monotonic()
        self._group = ""
        self._last_line = 0.0
        self._log = open(log_path, "w")  # noqa: SIM115 - closed by the reader thread
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self.process.stdout:
                self._log.write(line)
                self._log.flush()
                self._feed(line.rstrip("\n"))
        finally:
            self._log.close()
            self.ready.set()

    def _feed(self, line: str) -> None:
        if match := _CASES.match(line):
            self.expected = sorted(ast.literal_eval(match.group(1)), key=case_key)
            self.progress(f"{self.label}: {len(self.expected)} cases to run")
            self.ready.set()
        elif match := _RUNNING.search(line):
            self.done += 1
            case = match.group(1)
            group = case.rpartition(".")[0]  # "9.1" for 9.1.6, "2" for 2.4
            now = time.monotonic()
            if group != self._group or now - self._last_line >= 30:
                self._group, self._last_line = group, now
                total = len(self.expected) if self.expected else "?"
                self.progress(f"{self.label}: case {case} ({self.done}/{total}, {self.elapsed()})")
        elif _CONNECT_FAILED.match(line) or "Traceback" in line:
            self.progress(f"{self.label}: wstest: {line}")

    def elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60}m{seconds % 60:02d}s"

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)


def _python2_environment() -> dict[str, str]:
    """This environment minus what would point Python 2 at Python 3 modules; unbuffered output."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start_wstest(mode: str, spec: dict, outdir: Path, label: str, progress: Progress):
    python = ensure_env(progress)
    outdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(outdir / "reports", ignore_errors=True)
    (outdir / "spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    command = [str(python), str(WSTEST_LAUNCHER), "-m", mode, "-s", "spec.json", "-u", "0"]
    process = subprocess.Popen(
        command,
        cwd=outdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=_python2_environment(),
        start_new_session=True,
    )
    return process, _WstestOutput(process, outdir / "wstest.log", label, progress)


def read_report(
    index_path: Path, agent: str, expected: Iterable[str] = ()
) -> dict[str, CaseResult]:
    """Per-case verdicts from a report index.json; cases in ``expected`` without one are MISSING."""
    if not index_path.is_file():
        raise AutobahnError(f"wstest wrote no report index at {index_path}")
    index = json.loads(index_path.read_text())
    if agent not in index:
        raise AutobahnError(
            f"the report at {index_path} has no agent {agent!r} (has {list(index)})"
        )
    results = {
        case: CaseResult(
            behavior=entry["behavior"],
            behavior_close=entry["behaviorClose"],
            duration_ms=entry.get("duration"),
            remote_close_code=entry.get("remoteCloseCode"),
        )
        for case, entry in index[agent].items()
    }
    for case in expected:
        results.setdefault(case, CaseResult("MISSING", "MISSING"))
    return dict(sorted(results.items(), key=lambda item: case_key(item[0])))


def run_fuzzingclient(
    url: str,
    cases: Sequence[str] = ("*",),
    exclude: Sequence[str] = (),
    outdir: Path = DEFAULT_OUTPUT / "server",
    agent: str = "fastws",
    label: str = "autobahn server",
    progress: Progress = print,
    timeout: float = 3600.0,
) -> dict[str, CaseResult]:
    """Runs wstest's fuzzing client against the server at ``url``; one verdict per case."""
    spec = {
        "outdir": "./reports",
        "servers": [{"agent": agent, "url": url}],
        "cases": list(cases),
        "exclude-cases": list(exclude),
        "exclude-agent-cases": {},
    }
    process, output = _start_wstest("fuzzingclient", spec, Path(outdir), label, progress)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AutobahnError(f"wstest did not finish within {timeout:.0f} s") from None
    finally:
        stop_process(process)
        output.join()
    if process.returncode != 0:
        raise AutobahnError(
            f"wstest exited with {process.returncode}; see {Path(outdir) / 'wstest.log'}"
        )
    results = read_report(Path(outdir) / "reports" / "index.json", agent, output.expected or ())
    progress(f"{label}: finished in {output.elapsed()}")
    return results


class FuzzingServer:
    """wstest's fuzzing server, running; clients under test connect to ``url``.

    A client runs the cases at ``/runCase?case=N&agent=A`` (N from 1 to
    ``len(expected)``) and then asks for ``/updateReports?agent=A``, after which
    ``results(A)`` reads the verdicts.
    """

    def __init__(
        self,
        port: int,
        cases: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        outdir: Path = DEFAULT_OUTPUT / "client",
        label: str = "autobahn client",
        progress: Progress = print,
    ):
        self.port = port
        self.outdir = Path(outdir)
        self.label = label
        self.progress = progress
        self.spec = {
            "url": self.url,
            "outdir": "./reports",
            "cases": list(cases),
            "exclude-cases": list(exclude),
            "exclude-agent-cases": {},
        }
        self.process: subprocess.Popen | None = None
        self.output: _WstestOutput | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def expected(self) -> list[str]:
        return list(self.output.expected or ()) if self.output else []

    def start(self, timeout: float = 60.0) -> FuzzingServer:
        self.process, self.output = _start_wstest(
            "fuzzingserver", self.spec, self.outdir, self.label, self.progress
        )
        try:
            wait_for_port(self.port, timeout, self.process)
            self.output.ready.wait(timeout)
            if self.output.expected is None:
                raise AutobahnError(
                    f"the fuzzing server listed no cases; see {self.outdir / 'wstest.log'}"
                )
        except BaseException:
            self.stop()
            raise
        return self

    def results(self, agent: str = "fastws") -> dict[str, CaseResult]:
        return read_report(self.outdir / "reports" / "index.json", agent, self.expected)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        if self.output is not None:
            self.output.join()

    def __enter__(self) -> FuzzingServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run_fuzzingserver(
    port: int,
    cases: Sequence[str] = ("*",),
    exclude: Sequence[str] = (),
    outdir: Path = DEFAULT_OUTPUT / "client",
    label: str = "autobahn client",
    progress: Progress = print,
) -> FuzzingServer:
    """Starts wstest's fuzzing server on 127.0.0.1:port; use the result as a context manager."""
    return FuzzingServer(port, cases, exclude, outdir, label, progress).start()


# --------------------------------------------------------------------- summaries


def summarize(results: dict[str, CaseResult]) -> Summary:
    """Counts verdicts overall and per top-level category; keeps the cases that were not OK."""
    counts = dict.fromkeys(BEHAVIORS, 0)
    by_category: dict[str, dict[str, int]] = {}
    not_ok: dict[str, CaseResult] = {}
    for case, result in sorted(results.items(), key=lambda item: case_key(item[0])):
        behavior = result.behavior if result.behavior in counts else "FAILED"
        counts[behavior] += 1
        category = case.split(".")[0]
        by_category.setdefault(category, dict.fromkeys(BEHAVIORS, 0))[behavior] += 1
        if result.behavior != "OK":
            not_ok[case] = result
    return Summary(counts, by_category, not_ok)


def format_summary(summary: Summary, title: str) -> str:
    """A Markdown table of counts per category, then every case that was not OK."""
    lines = [f"### {title}", ""]
    lines.append("| category | " + " | ".join(BEHAVIORS) + " |")
    lines.append("|---" * (len(BEHAVIORS) + 1) + "|")
    for category in sorted(summary.by_category, key=int):
        name = f"{category} {CATEGORIES.get(category, '')}".strip()
        row = summary.by_category[category]
        lines.append(f"| {name} | " + " | ".join(str(row[b]) for b in BEHAVIORS) + " |")
    total = " | ".join(f"**{summary.counts[b]}**" for b in BEHAVIORS)
    lines.append(f"| **all {sum(summary.counts.values())}** | {total} |")
    if summary.not_ok:
        lines += ["", "Cases not OK:", ""]
        for case, result in summary.not_ok.items():
            close = f", close {result.behavior_close}" if result.behavior_close != "OK" else ""
            lines.append(f"- {case}: {result.behavior}{close}")
    return "\n".join(lines) + "\n"


def write_summary(
    outdir: Path, side: str, backend: str, results: dict[str, CaseResult], seconds: float
) -> Summary:
    """Writes summary.json (read by tests.conformance.report) and summary.md into outdir."""
    summary = summarize(results)
    outdir.mkdir(parents=True, exist_ok=True)
    document = {
        "side": side,
        "backend": backend,
        "autobahn": AUTOBAHN_VERSION,
        "seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "counts": summary.counts,
        "by_category": summary.by_category,
        "cases": {case: asdict(result) for case, result in results.items()},
    }
    (outdir / "summary.json").write_text(json.dumps(document, indent=1) + "\n")
    title = f"Autobahn {side} run, {backend} codec"
    (outdir / "summary.md").write_text(format_summary(summary, title))
    return summary


def load_allowlist(path: Path = ALLOWLIST) -> dict[str, dict[str, str]]:
    """The accepted NON-STRICT cases per side ("server", "client"): case id -> reason."""
    document = tomllib.loads(path.read_text())
    allowed: dict[str, dict[str, str]] = {}
    for side in ("server", "client"):
        entries = document.get(side, {})
        for case, reason in entries.items():
            if not (isinstance(reason, str) and reason.strip()):
                raise AutobahnError(f"{path.name}: [{side}] {case} needs a reason")
            case_key(case)  # a malformed id fails here, not silently never matching
        allowed[side] = dict(entries)
    return allowed


def verdict_problems(summary: Summary, allowed_non_strict: dict[str, str]) -> list[str]:
    """What makes a run fail: any FAILED, MISSING or UNIMPLEMENTED case, unlisted NON-STRICT."""

    def describe(cases: list[str]) -> str:
        return ", ".join(f"{case} (close {summary.not_ok[case].behavior_close})" for case in cases)

    problems = []
    for behavior in ("FAILED", "MISSING", "UNIMPLEMENTED"):
        if cases := summary.cases_with(behavior):
            problems.append(f"{len(cases)} {behavior}: {describe(cases)}")
    unlisted = [c for c in summary.cases_with("NON-STRICT") if c not in allowed_non_strict]
    if unlisted:
        problems.append(
            f"{len(unlisted)} NON-STRICT not accepted in {ALLOWLIST.name}: {describe(unlisted)}"
        )
    return problems


# --------------------------------------------------------------------- command line


def _print_flush(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.autobahn")
    modes = parser.add_subparsers(dest="mode", required=True)
    modes.add_parser("env", help="make the Autobahn virtualenv if it is missing")
    server = modes.add_parser("server", help="test a running server with the fuzzing client")
    server.add_argument("--url", required=True, help="ws:// URL of the echo server under test")
    client = modes.add_parser(
        "client", help="run the fuzzing server and a client command against it"
    )
    client.add_argument(
        "--command",
        required=True,
        help="client command; {port} is replaced by the fuzzing server's port",
    )
    for sub in (server, client):
        sub.add_argument("--cases", nargs="+", default=["*"], help="case patterns, e.g. 1.* 9.1.1")
        sub.add_argument("--exclude", nargs="+", default=[], help="case patterns to leave out")
        sub.add_argument("--agent", default="fastws")
        sub.add_argument("--outdir", type=Path, default=None)
        sub.add_argument("--timeout", type=float, default=3600.0, help="seconds for the whole run")
    args = parser.parse_args(argv)

    if args.mode == "env":
        _print_flush(f"wstest Python: {ensure_env(_print_flush)}")
        return 0
    started = time.monotonic()
    outdir = args.outdir or DEFAULT_OUTPUT / f"{args.mode}-manual"
    if args.mode == "server":
        results = run_fuzzingclient(
            args.url,
            args.cases,
            args.exclude,
            outdir,
            args.agent,
            progress=_print_flush,
            timeout=args.timeout,
        )
    else:
        port = free_port()
        with run_fuzzingserver(
            port, args.cases, args.exclude, outdir, progress=_print_flush
        ) as fuzzing_server:
            command = shlex.split(args.command.replace("{port}", str(port)))
            client_run = subprocess.run(command, stdin=subprocess.DEVNULL, timeout=args.timeout)
            if client_run.returncode != 0:
                _print_flush(f"client command exited with {client_run.returncode}")
            results = fuzzing_server.results(args.agent)
    summary = write_summary(outdir, args.mode, "manual", results, time.monotonic() - started)
    _print_flush(format_summary(summary, f"Autobahn {args.mode} run ({outdir})"))
    return 0 if summary.counts["FAILED"] + summary.counts["MISSING"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
