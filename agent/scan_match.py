"""How `edge-agent scan` judges which profile a Modbus meter is, from what it answered.

Plain functions over values already read: `judge` says whether one point's value is
one a meter of that profile would give, `Score` gathers a profile's verdicts and
identification, `choose` names a profile only when the evidence clearly favours it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from config.profiles import Profile
from drivers.modbus import scan as modbus_scan
from drivers.modbus.settings import ModbusPoint

__all__ = [
    "FITS",
    "MARGIN",
    "Score",
    "Verdict",
    "choose",
    "examine",
    "expected",
    "identified",
    "judge",
]

FITS = 0.8  # share of a profile's points that must answer for it to fit
MARGIN = 2  # plausible points by which the best fitting profile must beat the next


@dataclass(frozen=True)
class Verdict:
    kind: str  # strong (voltage, frequency, a rising counter) | good | ok | bad | none
    text: str


@dataclass
class Score:
    """How well one profile explains what a meter answered."""

    profile: str
    identified: bool | None = None  # its identify values: matched, contradicted, or none
    verdicts: list[Verdict] = field(default_factory=list)

    def count(self, *kinds: str) -> int:
        return sum(1 for v in self.verdicts if v.kind in kinds)

    @property
    def plausible(self) -> int:
        return self.count("strong", "good", "ok")

    @property
    def fits(self) -> bool:
        """No implausible value, most points answered, and something only a meter of this
        kind would say: its identification, or a live voltage or frequency."""
        total = len(self.verdicts)
        answered = total - self.count("none")
        return (
            self.identified is not False
            and self.count("bad") == 0
            and answered >= FITS * total
            and (self.identified is True or self.count("strong") > 0)
        )

    @property
    def weak_only(self) -> bool:
        """It would fit but for strong evidence: every value plausible, none live-only."""
        total = len(self.verdicts)
        return (
            self.identified is None
            and self.count("bad") == 0
            and total - self.count("none") >= FITS * total
            and self.count("strong") == 0
        )

    def summary(self) -> str:
        total = len(self.verdicts)
        said = f"{self.plausible}/{total} points plausible"
        bad, none = self.count("bad"), self.count("none")
        if bad:
            said += f", {bad} implausible"
        if none:
            said += f", {none} unanswered"
        if self.identified is not None:
            said += ", identified" if self.identified else ", identification differs"
        return said


def judge(point: ModbusPoint, first: float | str, second: float | str | None = None) -> Verdict:
    """Is a point's value one a meter of this profile would give? By its name and unit:
    voltage 80-300 V (300-500 V line-line), frequency 45-65 Hz, power factor -1..1,
    current 0..100 kA, a counter not below 0 that does not fall between two reads.
    Strong evidence (what a blank or foreign register map does not give): a live
    voltage or frequency, a counter that rose; a flow or heat meter has only the last."""
    where = f"{point.address:#06x} {point.function} {point.type}"
    if isinstance(first, str):
        return Verdict("none", f"{where}: {first}")
    number = f"{first:.12g}" if point.kind == "counter" else f"{first:.6g}"
    shown = f"{where} = {number} {point.unit}".rstrip()
    name, unit, v = point.name, point.unit, first
    if point.kind == "counter":
        if v < 0:
            return Verdict("bad", f"{shown}: a counter below 0")
        if isinstance(second, float) and second < v:
            return Verdict("bad", f"{shown}: counter fell to {second:.15g} between two reads")
        if isinstance(second, float) and second > v:  # live memory, not a blank register
            return Verdict("strong", f"{shown}: counter, rose between two reads")
        return Verdict("good", f"{shown}: counter, did not fall between two reads")
    if name.startswith("voltage") or unit == "V":
        if 80 <= v <= 300:
            return Verdict("strong", f"{shown}: plausible voltage")
        if 300 < v <= 500:
            return Verdict("strong", f"{shown}: plausible line-line voltage")
        return Verdict("bad", f"{shown}: not a live voltage (80-300 V, 300-500 V line-line)")
    if name.startswith("frequency") or unit == "Hz":
        if 45 <= v <= 65:
            return Verdict("strong", f"{shown}: plausible frequency")
        return Verdict("bad", f"{shown}: not a grid frequency (45-65 Hz)")
    if name.startswith("power_factor"):
        if -1 <= v <= 1:
            return Verdict("good", f"{shown}: plausible power factor")
        return Verdict("bad", f"{shown}: a power factor is within -1..1")
    if name.startswith("current") or unit == "A":
        if 0 <= v <= 100_000:
            return Verdict("good", f"{shown}: plausible current")
        return Verdict("bad", f"{shown}: not a current (0..100 kA)")
    limit = {"W": 1e9, "kW": 1e6, "MW": 1e3}.get(unit)
    if limit is not None:
        if abs(v) <= limit:
            return Verdict("good", f"{shown}: plausible power")
        return Verdict("bad", f"{shown}: beyond any meter's power")
    return Verdict("ok", f"{shown}: a number")


def identified(point: ModbusPoint, value: float | str, expect: Sequence[float], name: str) -> str:
    """The evidence line of an identification register."""
    where = f"{point.address:#06x} {point.function} {point.type}"
    if isinstance(value, str):
        return f"{where}: {value}"
    wanted = " or ".join(f"{e:g}" for e in expect)
    if expected(value, expect):
        return f"{where} = {value:g}: {name}'s identification ({point.name})"
    return f"{where} = {value:g}: not {name}'s {point.name} ({wanted})"


def expected(value: float | str, expect: Sequence[float]) -> bool:
    return isinstance(value, float) and any(
        math.isclose(value, e, rel_tol=1e-6, abs_tol=1e-9) for e in expect
    )


def identification(points: Sequence[ModbusPoint], values: Mapping[str, float | str]) -> bool | None:
    """True when the identification registers answered what the profile expects, False
    when one answered something else, None when none answered (a meter whose firmware
    predates the register: its values still decide)."""
    answered = [p for p in points if isinstance(values[p.name], float)]
    if not answered:
        return None
    return all(expected(values[p.name], getattr(p, "expect", [])) for p in answered)


def choose(scores: Sequence[Score]) -> tuple[str | None, str, list[str]]:
    """(profile or None, why, the profiles that fit). A profile is named when it alone
    fits; or its identification matched and no other's did; or it explains at least
    MARGIN more plausible points than the next (a three-phase map beside a single-phase
    one). A tie, or no fit, is unknown."""
    fitting = sorted(
        (s for s in scores if s.fits),
        key=lambda s: (s.identified is True, s.plausible),
        reverse=True,
    )
    names = [s.profile for s in fitting]
    if not fitting:
        return None, "no profile fits what it answered", []
    best = fitting[0]
    if len(fitting) == 1:
        return best.profile, f"{best.profile}: {best.summary()}; no other profile fits", names
    second = fitting[1]
    if best.identified is True and second.identified is not True:
        return best.profile, f"{best.profile}: identified; {best.summary()}", names
    if best.plausible - second.plausible >= MARGIN:
        why = f"{best.profile}: {best.summary()}, {second.profile} only {second.plausible}"
        return best.profile, why, names
    return None, f"{len(fitting)} profiles fit alike ({', '.join(names)}): not guessed", names


async def examine(
    found: modbus_scan.Found, profiles: Mapping[str, Profile], timeout: float
) -> tuple[list[Score], list[str]]:
    """Every profile scored against one meter: its identification and points, read twice
    for the counters of the profiles still in the running."""
    scores: list[Score] = []
    evidence: list[str] = []
    async with modbus_scan.opened(found, timeout) as line:
        reads = {}
        for name, profile in profiles.items():
            points = [p for p in profile.points if isinstance(p, ModbusPoint)]
            score = Score(name)
            idents = [p for p in profile.identify if isinstance(p, ModbusPoint)]
            if idents:
                values = await modbus_scan.read_points(line, found.unit, idents)
                for point in idents:
                    expect = getattr(point, "expect", [])
                    evidence.append(identified(point, values[point.name], expect, name))
                score.identified = identification(idents, values)
            reads[name] = (points, await modbus_scan.read_points(line, found.unit, points))
            scores.append(score)
        for score in scores:
            points, first = reads[score.profile]
            counters = [
                p for p in points if p.kind == "counter" and isinstance(first[p.name], float)
            ]
            again: dict[str, float | str] = {}
            if counters and not any(judge(p, first[p.name]).kind == "bad" for p in points):
                again = await modbus_scan.read_points(line, found.unit, counters)
            score.verdicts = [judge(p, first[p.name], again.get(p.name)) for p in points]
    return scores, evidence
