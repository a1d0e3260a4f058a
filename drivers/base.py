"""The interface every driver implements, and the optional abilities it may declare.

An ability only some drivers have is a small Protocol here, and the agent asks
`isinstance(driver, Writes)`, never `getattr`: what a driver can do is written
down in one place, and a driver declares it by having the method.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from config.base import PointBase
from domain.reading import Reading

__all__ = ["Browses", "Driver", "Identifies", "Plans", "Subscribes", "Writes"]


_SEEN: dict[tuple[type, type], bool] = {}  # (ability, driver class) -> has it


class _Ability(type(Protocol)):  # type: ignore[misc]
    """isinstance answered once per class: an ability is a method, which a driver's class
    has or lacks. (typing's own check takes about 7 us on Python 3.11; the daemon asks
    whether a driver Subscribes on every poll.) Nothing may be annotated here: typing
    would take it for a member of every ability."""

    def __instancecheck__(cls, instance: object) -> bool:
        key = (cls, type(instance))
        found = _SEEN.get(key)
        if found is None:
            found = _SEEN[key] = super().__instancecheck__(instance)
        return found


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
class Subscribes(Protocol, metaclass=_Ability):
    """Is told of changes between polls (OPC UA subscribe)."""

    def drain_changes(self) -> list[Reading]:
        """Every change of a counter point since the last call, oldest first."""
        ...


@runtime_checkable
class Writes(Protocol, metaclass=_Ability):
    """Serves a rule action: `write` is the protocol's own write model (its spec's
    WriteSpec.model) from the rule, `value` the value to write now. Raises
    domain.errors; a TransientError is worth retrying."""

    async def write(self, write: Any, value: bool | int | float) -> None: ...


@runtime_checkable
class Identifies(Protocol, metaclass=_Ability):
    """Can ask the one meter on its line who it is (`probe --identify`)."""

    async def identify(self) -> str: ...


@runtime_checkable
class Browses(Protocol, metaclass=_Ability):
    """Can list what its server holds (`probe --browse`), as a table to print."""

    async def browse(self, node: str | None) -> str: ...
