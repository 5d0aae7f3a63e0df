"""scripts/install-test-deps.sh, the first step of `make test` on a clean machine."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.paths import ROOT


def test_a_node_older_than_20_stops_the_install_with_a_clear_message(tmp_path: Path) -> None:
    fake = tmp_path / "node"
    fake.write_text("#!/bin/sh\ncase \"$1\" in -p) echo 18 ;; *) echo v18.19.0 ;; esac\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-test-deps.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "needs Node 20 or later, found v18.19.0" in done.stderr
