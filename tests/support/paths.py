"""Where things are in the repository, for tests that read docs or start processes."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TEST_OUTPUT = ROOT / "test-output"  # screenshots, reports and logs a run leaves behind
