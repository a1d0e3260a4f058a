"""Meters read one request per data identifier (DL/T 645, CJ/T 188): the plan, the poll,
and errors that name the device, the meter and the DI.

A DI the meter lacks spoils only its own points. A meter that stays silent
before answering anything in a poll is taken as dead, and the poll's other
DIs are marked bad without asking, so it costs one timeout while the meters
sharing its bus wait; once it has answered, a silent DI costs its own timeout
only (some meters ignore DIs they lack instead of sending an error reply).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from domain.errors import DecodeError, DeviceRejected, DeviceTimeout, Disconnected, EdgeAgentError
from domain.reading import Quality, Reading


class DiPoint(Protocol):
    """What the poll needs of a protocol's point."""

    @property
    def name(self) -> str: ...

    @property
    def unit(self) -> str: ...

    @property
    def di(self) -> str: ...


P = TypeVar("P", bound=DiPoint)


@dataclass(frozen=True)
class DiRequest(Generic[P]):
    """One read request and the points its reply serves."""

    di: str
    points: tuple[P, ...]

    def __str__(self) -> str:
        return f"DI {self.di}"


def plan(points: Iterable[P]) -> list[DiRequest[P]]:
    """One request per distinct DI, in the order the points first name it."""
    grouped: dict[str, list[P]] = {}
    for point in points:
        grouped.setdefault(point.di.upper(), []).append(point)
    return [DiRequest(di, tuple(group)) for di, group in grouped.items()]


def summary(requests: list[DiRequest[P]]) -> str:
    """'3 data identifiers (7 points)', for a driver's describe()."""
    points = sum(len(r.points) for r in requests)
    extra = f" ({points} points)" if points != len(requests) else ""
    return f"{len(requests)} data identifiers{extra}"


async def read_all(
    device: str,
    address: str,
    requests: Iterable[DiRequest[P]],
    ask: Callable[[str, str], Awaitable[bytes]],
    value_of: Callable[[DiRequest[P], bytes, P], float],
) -> list[Reading]:
    """Every point once; never raises (failures are bad readings with their reason).

    `ask(di, where)` returns a DI's data, its errors already located at `where`;
    `value_of(request, data, point)` decodes a point or raises DecodeError.
    """
    readings: list[Reading] = []
    failure: str | None = None  # the link or the meter is gone: skip the other DIs
    answered = False
    for request in requests:
        where = f"{device} meter {address} DI {request.di}"
        if failure is not None:  # each point names its own DI, and why it was not asked
            readings.extend(bad(device, request, f"{where}: not asked ({failure})"))
            continue
        try:
            data = await ask(request.di, where)
        except Disconnected as exc:
            failure = unlocated(exc, where, request.di)
            readings.extend(bad(device, request, str(exc)))
        except DeviceTimeout as exc:
            if not answered:
                failure = unlocated(exc, where, request.di)
            readings.extend(bad(device, request, str(exc)))
        except EdgeAgentError as exc:  # BadReply, DeviceRejected: the meter is alive
            answered = True
            readings.extend(bad(device, request, str(exc)))
        else:
            answered = True
            readings.extend(decoded(device, request, data, where, value_of))
    return readings


def decoded(
    device: str,
    request: DiRequest[P],
    data: bytes,
    where: str,
    value_of: Callable[[DiRequest[P], bytes, P], float],
) -> list[Reading]:
    """The readings of a DI's points; a point that does not decode is bad, with its reason."""
    now = time.time()
    readings = []
    for point in request.points:
        try:
            number = value_of(request, data, point)
        except DecodeError as exc:
            reason = f"{where}: {exc}"
            readings.append(Reading(device, point.name, now, None, point.unit, Quality.BAD, reason))
        else:
            readings.append(Reading(device, point.name, now, number, point.unit))
    return readings


def bad(device: str, request: DiRequest[P], reason: str) -> list[Reading]:
    """Every point of `request` bad, for `reason`."""
    now = time.time()
    return [Reading(device, p.name, now, None, p.unit, Quality.BAD, reason) for p in request.points]


def unlocated(exc: EdgeAgentError, where: str, di: str) -> str:
    """What went wrong at `where`, for the DIs skipped after it: `DI 00010000: no reply ...`."""
    return f"DI {di}: {str(exc).removeprefix(f'{where}: ')}"


def located(exc: EdgeAgentError, where: str) -> EdgeAgentError:
    """The same error, its message prefixed with the device, meter and DI it concerns."""
    message = f"{where}: {exc}"
    if isinstance(exc, DeviceRejected):
        return DeviceRejected(message, exc.code)
    return type(exc)(message)
