"""The house's floors: layers only point down, and no module imports itself in a circle.

Read from the source with `ast`, every import counted, also the ones inside a
function (a lazy import is still a dependency) and a dotted module name in a
string (drivers/registry.py loads each protocol's settings by name). Imports under
TYPE_CHECKING count for the floors but not for circles: they never run. A
"module:Class" string (a spec's driver, imported by whoever makes the driver)
is a name, not an import. The floors, bottom first, are the map in
docs/architecture.md.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "buffer", "cloud_sync", "config", "domain", "drivers", "receiver")

# bottom first; a module may import its own floor and the floors below it
FLOORS: list[tuple[str, list[str]]] = [
    ("domain", [r"domain(\..*)?"]),
    # a protocol's or an uplink kind's declarations (its settings models, the registries)
    # are read by the config root, so they sit on the config floor although they live in
    # the protocol's or the uplink's folder
    (
        "config",
        [
            r"config(\..*)?",
            r"drivers\.(base|registry|spec)",
            r"drivers\.\w+\.settings(\..*)?",
            r"drivers\.\w+\.tables",  # a protocol's tables, read by its settings and codec
            r"cloud_sync\.(registry|spec)",
            r"cloud_sync\.\w+\.settings(\..*)?",
        ],
    ),
    ("drivers, buffer", [r"drivers(\..*)?", r"buffer(\..*)?"]),
    ("uplinks, receiver", [r"cloud_sync(\..*)?", r"receiver(\..*)?"]),
    ("agent", [r"agent(\..*)?"]),
    ("cli", [r"agent\.cli", r"agent\.__main__"]),
]


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def floor(module: str) -> int:
    """The floor of the most specific pattern that matches (agent.cli: cli, not agent)."""
    matches = [
        (len(pattern), i)
        for i, (_, patterns) in enumerate(FLOORS)
        for pattern in patterns
        if re.fullmatch(pattern, module)
    ]
    assert matches, f"{module} is on no floor: add it to FLOORS and docs/architecture.md"
    return max(matches)[1]


def imports(module: str, path: Path, known: set[str], *, types: bool = True) -> Iterator[str]:
    """The project modules `module` imports (a `from pkg import name` of a submodule counts
    as that submodule); `types=False` leaves out what is imported under TYPE_CHECKING."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skipped: set[int] = set()
    if not types:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped |= {id(inner) for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Constant) and node.value in known and "." in node.value:
            if node.value != module:
                yield node.value
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                yield target


def graph(*, types: bool = True) -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imports(name, path, known, types=types)) for name, path in found.items()}


def test_no_module_imports_a_floor_above_its_own() -> None:
    wrong = [
        f"{module} ({FLOORS[floor(module)][0]}) imports {target} ({FLOORS[floor(target)][0]})"
        for module, targets in graph().items()
        for target in targets
        if floor(target) > floor(module)
    ]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circle() -> None:
    edges = graph(types=False)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    # a package's __init__ importing its own submodules is how Python packages work
    circles = [c for c in circles if not _package_and_child(c)]
    assert not circles, "\n".join(circles)


def _package_and_child(circle: str) -> bool:
    names = circle.split(" -> ")
    return len(set(names)) == 2 and any(a.startswith(b + ".") for a in names for b in names)


def test_the_receiver_imports_only_the_bottom_floor() -> None:
    """The reference receiver runs on the platform's side: none of the agent comes along."""
    outside = {
        target
        for module, targets in graph().items()
        if module.split(".")[0] == "receiver"
        for target in targets
        if target.split(".")[0] not in ("receiver", "domain")
    }
    assert not outside


def test_long_modules_say_why() -> None:
    """A module over about 400 lines says in its docstring why it is one piece."""
    long = []
    for name, path in modules().items():
        text = path.read_text()
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > 420 and "long because" not in doc:
            long.append(f"{name}: {lines} lines")
    assert not long, "\n".join(long)


def test_the_check_sees_a_real_violation(tmp_path: Path) -> None:
    """The graph reads relative, lazy and TYPE_CHECKING imports alike."""
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from agent.daemon import Agent\n"
        "def f():\n    from . import sibling\n    import agent.cli\n"
    )
    known = {"domain.m", "domain.sibling", "agent.daemon", "agent.cli", "agent"}
    assert set(imports("domain.m", source, known)) == {
        "agent.daemon",
        "domain.sibling",
        "agent.cli",
    }
