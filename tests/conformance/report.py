"""Rewrites docs/conformance.md from the latest Autobahn run summaries.

    python -m tests.conformance.report [--output docs/conformance.md]

tests/conformance/test_autobahn.py leaves one summary.json per run in
test-output/autobahn/<side>-<backend>/; this turns the four full runs of
``make conformance`` (server and client, cython and python codecs) into tables, and
adds the reason for every NON-STRICT verdict from
tests/conformance/autobahn-non-strict.toml. The hand-written section on the time of
``make test`` is kept as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.conformance.autobahn import (
    BEHAVIORS,
    CATEGORIES,
    DEFAULT_OUTPUT,
    case_key,
    load_allowlist,
)
from tests.support.paths import DOCS

RUNS = [("server", "cython"), ("server", "python"), ("client", "cython"), ("client", "python")]
DOCUMENT = DOCS / "conformance.md"

INTRO = """\
# Conformance

fastws is checked against the [Autobahn|Testsuite](https://github.com/crossbario/autobahn-testsuite)
(`autobahntestsuite` {version}), the reference test suite for RFC 6455 and
permessage-deflate (RFC 7692): {cases} cases in categories 1 to 13, covering framing,
pings, reserved bits, opcodes, fragmentation, UTF-8 validation, closing, limits and
compression.

- **Server**: wstest's fuzzing client runs every case against `python -m fastws echo`.
- **Client**: wstest's fuzzing server runs every case against `fastws.connect`, which
  echoes each message back from `Listener.on_message`, as the echo server does
  (`tests/conformance/autobahn_client.py`; `--api iterator` echoes from `async for`
  instead).

Each side runs with the compiled (Cython) codec and with the pure-Python codec
(`FASTWS_PURE=1`). A run passes when no case is FAILED, MISSING or UNIMPLEMENTED and
every NON-STRICT case is listed, with its reason, in
`tests/conformance/autobahn-non-strict.toml`. NON-STRICT means the behaviour conforms
but is not what the suite prefers (for example, failing a connection at the end of a
frame rather than at the first offending byte); INFORMATIONAL cases have no right
answer and are only recorded. wstest compares the echoes of its compression cases (12
and 13) with what it sent byte for byte, not by SHA-1 as it does unpatched
(`tests/conformance/wstest_loopback.py`).

- **`make test`** runs every case with the compiled codec and, with the pure-Python
  codec, the cases that exercise a codec (`CODEC_CASES` in
  `tests/conformance/test_autobahn.py`: categories 1 to 7, 9 and 10 whole, 12.1 and
  12.2, and 13.1 to 13.7 up to 64 KiB messages). `FASTWS_PURE=1` also selects the
  pure-Python connection state machine, so these cases run both connections; the rest
  repeat the same paths at larger sizes and other compression settings, and the
  differential tests hold the two codecs, and the two connections, equal.
- **`make conformance`** runs every case with both codecs, as server and as client,
  and rewrites this file from the four runs; the results below are from its last run.

Reproduce with:

```
scripts/install-test-deps.sh                  # Python 2.7 venv for wstest, Chromium
make conformance                              # the four full runs, two at a time
```

or one run: `python -m pytest -m autobahn --autobahn-full
"tests/conformance/test_autobahn.py::test_server_passes_autobahn[python]"`. Reports
(HTML per case) are left in `test-output/autobahn/<side>-<backend>/reports/`.
"""

KEPT_HEADING = "## Time of `make test`"
"""The hand-written section that a rewrite of the document keeps."""


def load_summaries(directory: Path) -> dict[tuple[str, str], dict]:
    summaries = {}
    for side, backend in RUNS:
        path = directory / f"{side}-{backend}" / "summary.json"
        if path.is_file():
            summaries[side, backend] = json.loads(path.read_text())
    return summaries


def overview_table(summaries: dict[tuple[str, str], dict]) -> list[str]:
    lines = [
        "| run | " + " | ".join(BEHAVIORS) + " | cases | duration | date |",
        "|---" * (len(BEHAVIORS) + 4) + "|",
    ]
    for side, backend in RUNS:
        summary = summaries.get((side, backend))
        if summary is None:
            dashes = " | ".join("-" for _ in BEHAVIORS)
            lines.append(f"| {side}, {backend} | {dashes} | not run | | |")
            continue
        counts = summary["counts"]
        minutes, seconds = divmod(int(summary["seconds"]), 60)
        lines.append(
            f"| {side}, {backend} | "
            + " | ".join(str(counts.get(b, 0)) for b in BEHAVIORS)
            + f" | {sum(counts.values())} | {minutes}m{seconds:02d}s | {summary['finished'][:10]} |"
        )
    return lines


def category_table(summary: dict) -> list[str]:
    lines = [
        "| category | " + " | ".join(BEHAVIORS) + " |",
        "|---" * (len(BEHAVIORS) + 1) + "|",
    ]
    for category in sorted(summary["by_category"], key=int):
        row = summary["by_category"][category]
        name = f"{category} {CATEGORIES.get(category, '')}".strip()
        lines.append(f"| {name} | " + " | ".join(str(row.get(b, 0)) for b in BEHAVIORS) + " |")
    return lines


def not_ok_lines(summary: dict, reasons: dict[str, str]) -> list[str]:
    lines = []
    for case in sorted(summary["cases"], key=case_key):
        result = summary["cases"][case]
        if result["behavior"] == "OK":
            continue
        close = result["behavior_close"]
        text = f"- {case}: {result['behavior']}" + (f" (close: {close})" if close != "OK" else "")
        if result["behavior"] == "NON-STRICT":
            text += (
                " (accepted, see below)" if case in reasons else " (NOT ACCEPTED: the run fails)"
            )
        lines.append(text)
    return lines


def kept_section(document: str) -> str:
    """The KEPT_HEADING section of a document (up to the next section), or ""."""
    start = document.find(KEPT_HEADING + "\n")
    if start < 0:
        return ""
    end = document.find("\n## ", start + len(KEPT_HEADING))
    return document[start : end if end >= 0 else len(document)].strip() + "\n"


def render(
    summaries: dict[tuple[str, str], dict], allowlist: dict[str, dict[str, str]], kept: str = ""
) -> str:
    any_summary = next(iter(summaries.values()))
    cases = sum(any_summary["counts"].values())
    out = [INTRO.format(version=any_summary["autobahn"], cases=cases)]
    if kept:
        out += [kept]
    out += ["## Results", ""]
    out += overview_table(summaries)
    for side, backend in RUNS:
        summary = summaries.get((side, backend))
        if summary is None:
            continue
        out += ["", f"### {side.capitalize()}, {backend} codec", ""]
        out += category_table(summary)
        if notes := not_ok_lines(summary, allowlist.get(side, {})):
            out += ["", "Cases not OK:", "", *notes]
    out += ["", "## Accepted NON-STRICT behaviour", ""]
    listed = [
        (side, case, reason)
        for side in ("server", "client")
        for case, reason in sorted(allowlist.get(side, {}).items(), key=lambda i: case_key(i[0]))
    ]
    if listed:
        out += [f"- {side} {case}: {reason}" for side, case, reason in listed]
    else:
        out.append("None is listed.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.report")
    parser.add_argument("--summaries", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--output", type=Path, default=DOCUMENT)
    args = parser.parse_args(argv)
    summaries = load_summaries(args.summaries)
    if not summaries:
        print(f"no summary.json under {args.summaries}; run `python -m pytest -m autobahn` first")
        return 1
    for side, backend in RUNS:
        if (side, backend) not in summaries:
            print(f"warning: no {side}/{backend} summary; its row says 'not run'")
    allowlist = load_allowlist()
    kept = kept_section(args.output.read_text()) if args.output.is_file() else ""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(summaries, allowlist, kept))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
