"""Create a virtual environment with pip in it, using only the standard library.

Debian ships the ``venv`` module but not ``ensurepip`` unless ``python3-venv`` is
installed, so ``python3 -m venv`` fails on a fresh machine. When that happens we
create the environment without pip and bootstrap pip from its wheel on PyPI
(a wheel of pip can run itself).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path


def _has_pip(python: Path) -> bool:
    probe = subprocess.run([python, "-m", "pip", "--version"], capture_output=True)
    return probe.returncode == 0


def _bootstrap_pip(python: Path) -> None:
    index = "https://pypi.org/pypi/pip/json"
    with urllib.request.urlopen(index, timeout=60) as reply:
        release = json.load(reply)
    wheel = next(f for f in release["urls"] if f["packagetype"] == "bdist_wheel")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / wheel["filename"]
        urllib.request.urlretrieve(wheel["url"], target)
        subprocess.run([python, f"{target}/pip", "install", "--quiet", str(target)], check=True)


def main(path: str) -> None:
    root = Path(path)
    python = root / "bin" / "python"
    if python.exists() and _has_pip(python):
        return
    try:
        venv.create(root, with_pip=True, clear=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"venv with pip failed ({exc}); bootstrapping pip from PyPI", file=sys.stderr)
        venv.create(root, with_pip=False, clear=True)
    if not _has_pip(python):
        _bootstrap_pip(python)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".venv")
