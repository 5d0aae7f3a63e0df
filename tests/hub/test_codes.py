"""docs/protocol.md mirrors the code tables of fastws/hub/protocol/codes.py."""

from __future__ import annotations

import re

from fastws.hub.protocol import codes
from tests.support.paths import DOCS

PROTOCOL = DOCS / "protocol.md"


def table_rows(heading: str) -> list[list[str]]:
    text = PROTOCOL.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"\d+", cells[0]):
            rows.append(cells)
    return rows


def test_error_codes_table_matches() -> None:
    documented = {int(code): meaning for code, meaning in table_rows("Error codes")}
    assert documented == codes.ERRORS


def test_close_codes_table_matches() -> None:
    documented = {
        int(code): (reason, reconnect == "yes")
        for code, reason, reconnect in table_rows("Close codes")
    }
    assert documented == {code: (d.reason, d.reconnect) for code, d in codes.CLOSES.items()}


def test_close_codes_follow_the_reconnect_rule() -> None:
    for code, disconnect in codes.CLOSES.items():
        assert 1000 <= code < 1100 or 4000 <= code <= 4999
        assert disconnect.reconnect == (code < 4500)


def test_unsubscribe_codes_table_matches() -> None:
    documented = {int(code): reason for code, reason in table_rows("Unsubscribe codes")}
    assert documented == {code: u.reason for code, u in codes.UNSUBSCRIBES.items()}


def test_unsubscribe_codes_follow_the_resubscribe_rule() -> None:
    for code, unsubscribe in codes.UNSUBSCRIBES.items():
        assert 2000 <= code <= 2999
        assert unsubscribe.resubscribe == (code >= 2500)
