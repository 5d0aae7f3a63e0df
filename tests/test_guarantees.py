"""docs/guarantees.md names, for every guarantee, the tests that prove it: they must exist."""

from __future__ import annotations

import re

from tests.support.paths import DOCS, ROOT

CITED = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def test_every_cited_test_exists() -> None:
    cited = CITED.findall((DOCS / "guarantees.md").read_text())
    assert len(cited) > 30
    missing = []
    for path, name in cited:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
        elif name and not re.search(rf"^(async )?def {name}\(", file.read_text(), re.MULTILINE):
            missing.append(f"{path}::{name}")
    assert missing == [], f"docs/guarantees.md cites tests that do not exist: {missing}"
