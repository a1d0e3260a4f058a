"""`edge-agent ping NAME`: try one destination's link by hand, as a technician does when
the platform's operator gives the address and codes, before the daemon runs."""

from __future__ import annotations

from agent import uplinks
from cloud_sync.base import Pings
from config.loader import LoadedConfig

EX_OK, EX_USAGE, EX_UNAVAILABLE = 0, 2, 69  # sysexits: the platform did not answer


async def ping(loaded: LoadedConfig, name: str) -> int:
    wanted = uplinks.wanted(loaded.config)
    want = wanted.get(name)
    if want is None:
        print(f"no destination named {name!r}; configured: {', '.join(wanted)}")
        return EX_USAGE
    destination = uplinks.make(loaded, want)
    try:
        if not isinstance(destination, Pings):
            print(
                f"{name} ({want.spec.key}) has no ping; `edge-agent status` shows its last delivery"
            )
            return EX_USAGE
        return EX_OK if await destination.ping(print) else EX_UNAVAILABLE
    finally:
        await destination.close()
