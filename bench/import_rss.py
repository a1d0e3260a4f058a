"""What the running agent's imports cost in RSS, package by package.

    .venv/bin/python bench/import_rss.py

An idle agent's RSS is mostly code: at 1 device it is within 2 MiB of what its
imports alone take. This imports what `edge-agent run` loads for a Modbus TCP plant
with an HTTP platform (the configuration bench/polling.py writes) in a fresh
interpreter, charging each module with the RSS its own body adds, not counting the
modules it imports (as `python -X importtime` does for time), summed by package,
ours together. The interpreter runs on the system allocator for this: pymalloc's
1 MiB arenas would charge a whole arena to whichever module happened to open it.
The baseline is the same interpreter before those imports (with this script's own:
json, subprocess, importlib).
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
# What `run` imports for that plant: the CLI, the service, the daemon, the buffer, and
# the driver and uplink its registries load for those sections (drivers/registry.py,
# cloud_sync/registry.py).
RUN_PATH = (
    "agent.cli", "agent.service", "agent.daemon", "buffer.store",
    "drivers.modbus.tcp", "cloud_sync.http.uploader",
)  # fmt: skip
OURS = ("agent", "buffer", "cloud_sync", "config", "domain", "drivers")


def _rss() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Charging(importlib.abc.MetaPathFinder):
    """Finds modules as the other finders do and wraps their loading to weigh it."""

    def __init__(self) -> None:
        self.own: dict[str, float] = {}
        self._nested: list[float] = []

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is None:
                continue
            loader = spec.loader
            if loader is not None and hasattr(loader, "exec_module"):
                run = loader.exec_module
                loader.exec_module = functools.partial(self._weigh, name, run)  # type: ignore[method-assign]
            return spec
        return None

    def _weigh(self, name: str, run: Callable[[ModuleType], None], module: ModuleType) -> None:
        before = _rss()
        self._nested.append(0.0)
        try:
            run(module)
        finally:
            nested = self._nested.pop()
            total = _rss() - before
            self.own[name] = total - nested
            if self._nested:
                self._nested[-1] += total


def _child() -> None:
    bare = _rss()
    charging = _Charging()
    sys.meta_path.insert(0, charging)
    for module in RUN_PATH:
        importlib.import_module(module)
    print(json.dumps({"bare": bare, "total": _rss(), "own": charging.own}))


def main() -> None:
    env = {**os.environ, "PYTHONMALLOC": "malloc", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, __file__, "--child"], capture_output=True, text=True, check=True, env=env
    ).stdout
    measured = json.loads(out)
    by_package: dict[str, float] = {}
    for module, mib in measured["own"].items():
        top = module.split(".")[0]
        name = "(edge-agent)" if top in OURS else top
        by_package[name] = by_package.get(name, 0.0) + mib
    bare, total = measured["bare"], measured["total"]
    print(f"{'package':<24} {'MiB':>6}")
    print(f"{'interpreter before':<24} {bare:>6.1f}")
    shown = 0.0
    for name, mib in sorted(by_package.items(), key=lambda row: -row[1]):
        if mib >= 0.25:
            print(f"{name:<24} {mib:>6.1f}")
            shown += mib
    print(f"{'the rest':<24} {total - bare - shown:>6.1f}")
    print(f"{'all of them':<24} {total:>6.1f}  ({total / bare:.2f}x the interpreter before)")


if __name__ == "__main__":
    _child() if sys.argv[1:] == ["--child"] else main()
