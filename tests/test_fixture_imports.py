"""The tests share helpers through tests/fixtures only: no test module is another's library.

Read from the source with `ast`, every import counted, also the ones inside a
function. A module of tests/ outside tests/fixtures (a test module, a conftest,
a data script) may import from `tests` only what is in `tests.fixtures`; a
fixtures module imports no test module or conftest. So a test module can be
moved, renamed or deleted without breaking another one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in `path` (a file under `root`); `from a import b`
    gives a.b as well as a, since b may be a module."""
    package = module_name(path, root).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package up
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def is_fixture(module: str) -> bool:
    return module == "tests.fixtures" or module.startswith("tests.fixtures.")


def is_test_code(module: str) -> bool:
    """A test module or a conftest: what no other module may import."""
    last = module.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def test_test_modules_import_shared_helpers_only_from_tests_fixtures() -> None:
    """Outside tests/fixtures, an import of `tests.<anything>` is an import of tests.fixtures."""
    offences = []
    for path in sorted(TESTS.rglob("*.py")):
        if is_fixture(module_name(path)):
            continue
        for line, module in imported(path):
            if module.split(".")[0] != "tests" or module == "tests":
                continue
            if not is_fixture(module):
                offences.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    assert offences == []


def test_fixtures_import_no_test_module_or_conftest() -> None:
    """tests/fixtures builds on the code and on itself, never on a test module or a conftest."""
    offences = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in sorted((TESTS / "fixtures").rglob("*.py"))
        for line, module in imported(path)
        if (module.split(".")[0] == "tests" and not is_fixture(module)) or is_test_code(module)
    ]
    assert offences == []


def test_the_rule_sees_what_it_forbids(tmp_path: Path) -> None:
    """The reader finds a lazy import inside a function, a `from` import of a test module
    and a relative one: the checks above cannot pass for want of looking."""
    text = (
        "from tests.agent import test_rule_actions\n"
        "def f():\n"
        "    from tests.agent.test_pipeline import built\n"
        "    from .daemon_proc import agent_yaml\n"
    )
    sample = tmp_path / "tests" / "agent" / "test_sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(text)
    found = {module for _, module in imported(sample, tmp_path)}
    assert {
        "tests.agent.test_rule_actions",
        "tests.agent.test_pipeline",
        "tests.agent.daemon_proc",
    } <= found
