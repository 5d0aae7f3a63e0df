"""The import rule of docs/architecture.md: layers point one way, and no module imports itself
back through others.

``LAYERS`` lists the layers from the bottom up; a module may import its own layer and the
layers listed before it, never one after. The hub's Python client SDK stands aside: it may
import only the engine's client side and the hub's wire protocol, and nothing in fastws imports
it. The hub's testing kit stands aside too, above both: it may import the hub up to its server
and the client SDK, and nothing in fastws imports it. Every fastws module must belong to a
layer, so a new module takes a place in the table.

Runtime imports are checked: module level and inside functions. Imports under
``if TYPE_CHECKING:`` are exempt, since they never run; they let a lower layer name a higher
one's type in an annotation. The package ``__init__`` modules Python runs on the way to a
submodule are not counted as imported.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.support.paths import ROOT

PACKAGE = ROOT / "fastws"


@dataclass(frozen=True)
class Layer:
    name: str
    modules: tuple[str, ...]  # "a.b" is that module alone, "a.b.*" the package and all inside


ENGINE = (
    Layer("codec", ("fastws._codec", "fastws._codec_py", "fastws.codec", "fastws.buffers",
                    "fastws.closecodes", "fastws.faults", "fastws.errors")),
    Layer("connection", ("fastws._connection", "fastws._connection_py", "fastws.connection",
                         "fastws.handshake", "fastws.deflate")),
    Layer("glue", ("fastws._protocol", "fastws._protocol_py", "fastws.protocol")),
    Layer("server and client", ("fastws.server", "fastws.client", "fastws")),
)
ENGINE_CLIENT_SIDE = (*ENGINE[:3], Layer("engine client", ("fastws.client",)))

HUB = (
    Layer("hub base", ("fastws.hub", "fastws.hub.protocol.*", "fastws.hub.namespaces", "fastws.hub.config",
                       "fastws.hub.channels", "fastws.hub.logs", "fastws.hub.tls",
                       "fastws.hub.ipc", "fastws.hub.limiter", "fastws.hub.httpheaders")),
    Layer("broker", ("fastws.hub.broker.*",)),
    Layer("hooks", ("fastws.hub.hooks.*",)),
    Layer("auth and metrics", ("fastws.hub.auth", "fastws.hub.tokens", "fastws.hub.permissions",
                               "fastws.hub.messages", "fastws.hub.metrics")),
    Layer("node", ("fastws.hub.node",)),
    Layer("commands", ("fastws.hub.commands.*",)),
    Layer("session", ("fastws.hub.session",)),
    Layer("hub server", ("fastws.hub.api", "fastws.hub.app")),
    Layer("processes", ("fastws.hub.process.*",)),
)

LAYERS = (*ENGINE, *HUB, Layer("command line", ("fastws.cli", "fastws.__main__", "fastws.echo")))

CLIENT_SDK = Layer("hub client SDK", ("fastws.hub.client.*",))
CLIENT_SDK_MAY_IMPORT = (*ENGINE_CLIENT_SIDE, Layer("hub wire protocol", ("fastws.hub.protocol.*",)))

TESTING_KIT = Layer("hub testing kit", ("fastws.hub.testing",))
TESTING_KIT_MAY_IMPORT = (*LAYERS[: LAYERS.index(HUB[-2]) + 1], CLIENT_SDK)  # up to the hub server
ASIDE = {CLIENT_SDK: CLIENT_SDK_MAY_IMPORT, TESTING_KIT: TESTING_KIT_MAY_IMPORT}


def matches(entry: str, module: str) -> bool:
    package = entry.removesuffix(".*")
    return module == package or (entry.endswith(".*") and module.startswith(package + "."))


def covers(layer: Layer, module: str) -> bool:
    return any(matches(entry, module) for entry in layer.modules)


def layer_of(module: str) -> Layer | None:
    """The layer whose most specific entry covers ``module``."""
    entries = [(entry, layer) for layer in (*LAYERS, *ASIDE) for entry in layer.modules]
    found = [(len(entry), layer) for entry, layer in entries if matches(entry, module)]
    return max(found, key=lambda pair: pair[0])[1] if found else None


# -- reading the imports ----------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix in (".py", ".pyx") and "__pycache__" not in path.parts:
            found[module_name(path)] = path
    return found


def is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def runtime_imports(node: ast.AST):
    """The import statements in ``node``, except those under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and is_type_checking(child.test):
            yield from runtime_imports(ast.Module(body=child.orelse, type_ignores=[]))
        else:
            yield from runtime_imports(child)


def imported_modules(module: str, path: Path) -> set[str]:
    """The fastws modules ``module`` imports at run time."""
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    if path.suffix == ".pyx":  # Cython: its Python-level imports are plain lines at the top
        text = path.read_text()
        pairs = [(m, ()) for m in re.findall(r"^import (fastws[\w.]*)", text, re.M)]
        pairs += [
            (m, tuple(n.strip() for n in names.split(",")))
            for m, names in re.findall(r"^from (fastws[\w.]*) import ([\w, ]+)$", text, re.M)
        ]
    else:
        pairs = []
        for node in runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                pairs += [(alias.name, ()) for alias in node.names]
            elif node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                pairs.append((target, tuple(alias.name for alias in node.names)))
            else:
                pairs.append((node.module, tuple(alias.name for alias in node.names)))
    found = set()
    for target, names in pairs:
        if target != "fastws" and not target.startswith("fastws."):
            continue
        submodules = {f"{target}.{name}" for name in names} & modules().keys()
        found |= submodules
        if not names or len(submodules) < len(names):
            found.add(target)
    return found - {module}


@cache
def import_graph() -> dict[str, set[str]]:
    return {module: imported_modules(module, path) for module, path in modules().items()}


# -- the rule ---------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    missing = sorted(module for module in modules() if layer_of(module) is None)
    assert not missing, f"add these modules to a layer in tests/test_layers.py: {missing}"


def upward_imports() -> list[tuple[str, str, str]]:
    """(importer, imported, why it breaks the rule) for every import that points up."""
    broken = []
    for module, imported in sorted(import_graph().items()):
        layer = layer_of(module)
        if layer is None:
            continue  # test_every_module_has_a_layer names it
        if layer in ASIDE:
            allowed = [layer, *ASIDE[layer]]
            for target in sorted(imported):
                if not any(covers(other, target) for other in allowed):
                    broken.append((module, target, f"{layer.name} may not import it"))
            continue
        rank = LAYERS.index(layer)
        for target in sorted(imported):
            target_layer = layer_of(target)
            if target_layer in ASIDE:
                broken.append((module, target, f"nothing in fastws imports the {target_layer.name}"))
            elif target_layer is not None and LAYERS.index(target_layer) > rank:
                broken.append((module, target, f"{layer.name} is below {target_layer.name}"))
    return broken


def test_imports_point_down() -> None:
    broken = [f"{module} imports {target}: {why}" for module, target, why in upward_imports()]
    assert not broken, "imports that point up:\n" + "\n".join(broken)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as the list of modules around it, or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph.get(module, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_what_it_checks() -> None:
    """The rule is only as good as the import reading: spot-check it on known imports."""
    graph = import_graph()
    assert "fastws.closecodes" in graph["fastws._connection_py"]  # from fastws import closecodes
    assert "fastws.errors" in graph["fastws._codec"]  # the Cython module, read as text
    assert "fastws.hub.protocol.wire" in graph["fastws.hub.session"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert layer_of("fastws.hub.broker.redis.scripts").name == "broker"
    assert layer_of("fastws").name == "server and client"
    assert layer_of("fastws.hub.testing") is TESTING_KIT
    assert TESTING_KIT_MAY_IMPORT[-2].name == "hub server"
