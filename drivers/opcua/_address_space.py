"""The OPC UA standard address space of a simulated server, built once per machine.

`Server.init()` builds asyncua's standard nodes (about 10,000) anew each time: over a
second of CPU per simulated meter, paid again at every `restart()`, and the tests start
one every few seconds on a machine shared by four workers. asyncua's own provision for
slow devices, `Server.init(shelf_file=...)`, builds them into a shelf once and then
loads only the nodes asked for (under 0.1 s a start). The shelf is kept in the user's
cache folder, named for the asyncua and Python versions, and only ever read there:
a server builds it in a folder of its own and renames that into place (atomic; a
folder already there wins), so simulators starting at once in several processes share it.
Any trouble with the cache and a server builds its nodes as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import asyncua
from asyncua import Server

__all__ = ["initialized"]

logger = logging.getLogger("edge_agent.opcua")
_SHELF = "standard"  # the shelf's name in its folder


def _folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    python = f"py{sys.version_info.major}.{sys.version_info.minor}"
    return Path(base) / "edge-agent" / f"asyncua-{asyncua.__version__}-{python}-address-space"


async def initialized(make: Callable[[], Server]) -> Server:
    """`make()`'s server, init()-ed from the cached shelf when there is one; otherwise
    init()-ed as usual, building the shelf on the way for the next server."""
    try:
        folder = _folder()
    except RuntimeError:  # no home folder to keep a cache in (a bare service account)
        return await _plain(make)
    shelf = folder / _SHELF
    if shelf.is_file():  # the mark that the shelf beside it is whole (see _build)
        server = make()
        try:
            await server.init(shelf_file=shelf)
            return server
        except Exception as exc:  # a damaged cache: say so once, build as before
            logger.warning("OPC UA simulator: %s unusable (%s); building the nodes", folder, exc)
            return await _plain(make)
    with contextlib.suppress(OSError):
        return await _build(make, folder)
    return await _plain(make)


async def _plain(make: Callable[[], Server]) -> Server:
    server = make()
    await server.init()
    return server


async def _build(make: Callable[[], Server], folder: Path) -> Server:
    """init() writing the shelf into a folder of its own, then that folder renamed into
    place. asyncua looks for the shelf under its own name, but Python's fallback dbm (no
    gdbm here) keeps it as <name>.dat and <name>.dir: an empty file of the name itself,
    made last, is both asyncua's sign and ours that the shelf is whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        server = make()
        await server.init(shelf_file=building / _SHELF)
        (building / _SHELF).touch()
        with contextlib.suppress(OSError):  # another process was first: its folder stays
            building.rename(folder)
        return server
    finally:
        shutil.rmtree(building, ignore_errors=True)
