"""Finding the DL/T 645 meters on a serial port: which addresses answer, at which speed,
in which edition. For `edge-agent scan`.

Only read requests are ever sent: 2007 "read communication address" (13H)
and "read data" of the forward active energy (11H, DI 00010000), and 1997
"read data" (01H, DI 9010). With no addresses given, the wildcard address
AAAAAAAAAAAA finds a meter alone on its line: a 2007 meter answers 13H with
its address; 1997 has no such command, so it is asked for 9010 with the
wildcard and its address is the one its reply frame carries (meters of that
age answer the all-AA address in practice; the 1997 text uses AA only to pad
short addresses). A 1997 meter ignores 2007 frames and the reverse, so one
meter of each edition on one line are both found this way; two of one edition
answer at once and garble each other, which is said in `heard` (give their
addresses then). With addresses, each is asked in both editions; an abnormal
reply proves a meter as well as a value does.

Each exchange holds the port's bus lock (drivers.bus). A port the agent of
this process already uses is scanned through its link, at its speed only, so
the agent's polls are not disturbed; a port another program holds is refused
(Disconnected, "in use by another program") before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from domain.errors import DecodeError, DeviceRejected, DeviceTimeout, Disconnected, EdgeAgentError
from drivers.dlt645 import _link
from drivers.dlt645.codec import (
    EDITION_1997,
    EDITION_2007,
    WILDCARD,
    Edition,
    Frame,
    decode_bcd,
    meter_address,
    read_address,
    read_data,
    reply_data,
)

__all__ = ["Dlt645Found", "scan_port"]

# forward active energy, total: XXXXXX.XX kWh in both editions (1997 appendix A, energy
# table, 9010; 2007 table A.1, 00010000); every multi-function meter has it
ENERGY = {"2007": "00010000", "1997": "9010"}
ENERGY_FORMAT = "XXXXXX.XX"


@dataclass(frozen=True)
class Dlt645Found:
    """A meter that answered: where, how, and what it said (one line per answer)."""

    address: str
    edition: Literal["1997", "2007"]
    baudrate: int
    parity: str
    evidence: tuple[str, ...]


async def scan_port(
    port: str,
    *,
    baudrates: Sequence[int] = (2400, 1200, 4800, 9600),
    addresses: Sequence[str] = (),
    parity: str = "E",
    timeout: float = 0.5,
    heard: list[str] | None = None,
) -> list[Dlt645Found]:
    """The meters on `port`, in the order found.

    `heard` collects what answered but was no meter (garbage, colliding
    replies), one line each, for the technician. Raises Disconnected when the
    port cannot be opened (missing, refused, held by another program) and
    ValueError for an address that is not 12 digits.
    """
    for address in addresses:
        if len(address) != 12 or not address.isdigit():
            raise ValueError(f"a DL/T 645 address has 12 digits (got {address!r})")
    notes: list[str] = [] if heard is None else heard
    found: dict[str, Dlt645Found] = {}
    shared = _link.shared(port)
    speeds = [(shared.baudrate, shared.parity)] if shared else [(b, parity) for b in baudrates]
    for baudrate, line_parity in speeds:
        link = shared or _link.opened(port, baudrate, line_parity)
        scanner = _Scanner(link, timeout, notes)
        try:
            if not addresses:
                for meter in await scanner.wildcard():
                    found.setdefault(meter.address, meter)
            for address in addresses:
                answered = None if address in found else await scanner.address(address)
                if answered is not None:
                    found[address] = answered
        except Disconnected as exc:
            raise Disconnected(
                f"cannot scan {port}: {exc}; nothing was sent (a port held by another "
                "program, such as the agent's service, is never scanned under it)"
            ) from exc
        finally:
            if link is not shared:
                await link.close()
    return list(found.values())


class _Scanner:
    """The questions of a scan at one line speed."""

    def __init__(self, link: _link.Link, timeout: float, heard: list[str]) -> None:
        self.link = link
        self.timeout = timeout
        self.heard = heard

    def _found(self, address: str, edition: Edition, evidence: list[str]) -> Dlt645Found:
        name: Literal["1997", "2007"] = "1997" if edition is EDITION_1997 else "2007"
        return Dlt645Found(address, name, self.link.baudrate, self.link.parity, tuple(evidence))

    async def wildcard(self) -> list[Dlt645Found]:
        """The lone meter of each edition, asked with the wildcard address."""
        found = []
        request = read_address()
        reply = await self._ask(request, f"2007 read address (13H) at {WILDCARD}")
        if reply is not None:
            try:
                address = meter_address(reply)
            except EdgeAgentError as exc:
                self._heard(f"2007 read address at {WILDCARD}: {exc}")
            else:
                evidence = [f"2007 read address (13H) at {WILDCARD} → {address}"]
                evidence.append(await self._energy(address, EDITION_2007))
                found.append(self._found(address, EDITION_2007, evidence))
        request = read_data(WILDCARD, ENERGY["1997"], EDITION_1997)
        reply = await self._ask(request, f"1997 read 9010 at {WILDCARD}")
        if reply is not None:
            if reply.address.isdigit():
                said = _said(request, reply)
                evidence = [f"1997 read 9010 at {WILDCARD} → {said} from meter {reply.address}"]
                found.append(self._found(reply.address, EDITION_1997, evidence))
            else:
                self._heard(f"1997 read 9010 at {WILDCARD}: a reply from address {reply.address}")
        return found

    async def address(self, address: str) -> Dlt645Found | None:
        """The meter at `address`, asked in both editions; 2007 first, and the edition
        found is the first that answered (a meter that speaks both says so)."""
        answered: list[tuple[Edition, str]] = []
        for edition in (EDITION_2007, EDITION_1997):
            di = ENERGY[edition.name]
            request = read_data(address, di, edition)
            reply = await self._ask(request, f"{edition.name} read {di} at {address}")
            if reply is not None:
                answered.append((edition, f"{edition.name} read {di} → {_said(request, reply)}"))
        if not answered:
            return None
        evidence = [line for _, line in answered]
        if len(answered) == 2:
            evidence.append("answers both editions: 2007 is used")
        return self._found(address, answered[0][0], evidence)

    async def _energy(self, address: str, edition: Edition) -> str:
        di = ENERGY[edition.name]
        request = read_data(address, di, edition)
        reply = await self._ask(request, f"{edition.name} read {di} at {address}", quiet=True)
        said = "no reply" if reply is None else _said(request, reply)
        return f"{edition.name} read {di} → {said}"

    async def _ask(self, request: Frame, what: str, *, quiet: bool = False) -> Frame | None:
        """The reply to `request`, or None (noted in `heard` when something else came)."""
        try:
            return await self.link.exchange(request, self.timeout)
        except DeviceTimeout as exc:
            text = str(exc)  # silence is no news; anything heard instead is
            if not quiet and (not text.startswith("no reply within") or "; heard" in text):
                self._heard(f"{what}: {text}")
            return None

    def _heard(self, line: str) -> None:
        self.heard.append(f"{self.link.port} @{self.link.settings}: {line}")


def _said(request: Frame, reply: Frame) -> str:
    """What a reply to an energy read says: the value, or the meter's refusal."""
    try:
        raw = reply_data(request, reply)
    except DeviceRejected as exc:
        return str(exc)
    except EdgeAgentError as exc:
        return f"an unexpected reply ({exc})"
    try:
        return f"{decode_bcd(raw, ENERGY_FORMAT):.2f} kWh"
    except DecodeError:
        return f"value bytes {raw.hex(' ').upper()}"
