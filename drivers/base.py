"""The interface every driver implements, and the optional abilities it may declare."""

from __future__ import annotations

from typing import Protocol

from domain.reading import Reading


class Driver(Protocol):
    """One device. `read` polls every point once; `close` releases the link."""

    device: str

    async def read(self) -> list[Reading]: ...

    async def close(self) -> None: ...
