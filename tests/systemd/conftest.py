"""The real-systemd tier: each test module gets its own container, booted and installed.

Not part of the main suite (pyproject.toml's norecursedirs leaves tests/systemd out of
a plain `pytest`); `make test-systemd` runs it, and `make test` runs it beside the
main suite. Each module's container is its own copy of the cached Debian tree, so the
modules run in parallel (pytest-xdist, one module per worker).

On a machine that cannot boot a systemd (not root, no systemd-nspawn or mmdebstrap,
no network to build the tree) the tier says what is missing and skips; under CI=true
it fails instead, so CI never passes without having run it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from tests.fixtures.nspawn import Unavailable, boot, debian_tree, missing, wheels
from tests.fixtures.systemd_site import WHEELS, Site, install

REPO = Path(__file__).resolve().parents[2]


def unavailable(why: str) -> NoReturn:
    text = f"the real-systemd tier cannot run here: {why}"
    if os.environ.get("CI") == "true":
        pytest.fail(text, pytrace=False)
    pytest.skip(text)


@pytest.fixture(scope="module")
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A container of this module's own with edge-agent installed, the unit not started."""
    problems = missing()
    if problems:
        unavailable("; ".join(problems))
    try:
        tree = debian_tree()
        wheel_dir = wheels(REPO)
    except Unavailable as exc:
        unavailable(str(exc))
    workdir = tmp_path_factory.mktemp("nspawn")
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = f"ea-{module[:20]}-{os.getpid()}".replace("_", "-")
    try:
        box = boot(tree, workdir, name, extra=[f"--bind-ro={wheel_dir}:{WHEELS}"])
    except Unavailable as exc:
        unavailable(str(exc))
    try:
        yield install(box, REPO, workdir)
    finally:
        box.stop()
        shutil.rmtree(workdir, ignore_errors=True)
