"""The broker package imports downward only: its modules never import a package's
``__init__`` (which imports them to choose a broker), nor the hub layers above them."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

PACKAGE = ROOT / "fastws" / "hub" / "broker"
PACKAGES = {"fastws.hub.broker", "fastws.hub.broker.redis", "fastws.hub.broker.nats"}
ABOVE = ("fastws.hub.process", "fastws.hub.app", "fastws.hub.node", "fastws.hub.session",
         "fastws.hub.api", "fastws.hub.commands", "fastws.hub.metrics")  # fmt: skip


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_broker_modules_import_neither_their_package_nor_the_layers_above() -> None:
    modules = [path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"]
    assert len(modules) >= 8
    wrong = {
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules
        for name in imported(path)
        if name in PACKAGES or name.startswith(ABOVE)
    }
    assert wrong == set()
