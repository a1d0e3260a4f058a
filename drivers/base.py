"""The interface every driver implements, and the optional abilities it may declare.

An ability only some drivers have is a small Protocol here, and the agent asks
`isinstance(driver, Writes)`, never `getattr`: what a driver can do is written
down in one place, and a driver declares it by having the method. (typing's
isinstance takes some microseconds: the poll path asks once per driver, when
it is made, not on every poll.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeGuard, runtime_checkable

from config.base import PointBase
from domain.reading import Reading

__all__ = [
    "Browses",
    "CountsLateReplies",
    "Driver",
    "Identifies",
    "Plans",
    "Subscribes",
    "Writes",
    "subscribes",
]


@runtime_checkable
class Driver(Protocol):
    """One device. `read` polls every point once and never raises (a failure is a bad
    reading with its reason); `close` releases the link; `describe` is the start-up
    line: 'main_incomer: 3 requests, 42 registers, 18 points on 10.0.0.1:502 unit 1'."""

    device: str

    def describe(self) -> str: ...

    async def read(self) -> list[Reading]: ...

    async def close(self) -> None: ...


class Request(Protocol):
    """One request of a plan: printed as itself, followed by the points it reads."""

    @property
    def points(self) -> Sequence[PointBase]: ...


@runtime_checkable
class Plans(Protocol):
    """Reads in requests planned at start-up, which `probe --plan` prints."""

    requests: Sequence[Request]


@runtime_checkable
class Subscribes(Protocol):
    """Is told of changes between polls (OPC UA subscribe)."""

    def drain_changes(self) -> list[Reading]:
        """Every change of a counter point since the last call, oldest first."""
        ...


def subscribes(driver: object) -> TypeGuard[Subscribes]:
    """isinstance(driver, Subscribes), decided once a driver class: an isinstance against
    a runtime Protocol looks up its members every time (0.14 s of start-up at 5,000
    meters)."""
    cls = type(driver)
    found = _SUBSCRIBES.get(cls)
    if found is None:
        found = _SUBSCRIBES[cls] = callable(getattr(cls, "drain_changes", None))
    return found


_SUBSCRIBES: dict[type, bool] = {}


@runtime_checkable
class Writes(Protocol):
    """Serves a rule action: `write` is the protocol's own write model (its spec's
    WriteSpec.model) from the rule, `value` the value to write now. Raises
    domain.errors; a TransientError is worth retrying."""

    async def write(self, write: Any, value: bool | int | float) -> None: ...


@runtime_checkable
class Identifies(Protocol):
    """Can ask the one meter on its line who it is (`probe --identify`): its "address",
    then what else the protocol tells (DL/T 645: the "edition" that answered)."""

    async def identify(self) -> Mapping[str, str]: ...


@runtime_checkable
class Browses(Protocol):
    """Can list what its server holds (`probe --browse`), as a table to print."""

    async def browse(self, node: str | None) -> str: ...


@runtime_checkable
class CountsLateReplies(Protocol):
    """Throws away replies that came after their request was given up, and counts them
    (/metrics): many mean the device's timeout is shorter than its meter or gateway needs."""

    @property
    def late_replies(self) -> int: ...
