"""What a meter's wiring does to its values: transformer ratios and reversed wiring.

A meter behind current and voltage transformers counts the secondary side; the
plant's energy is that times CT ratio times PT ratio. A meter wired backwards
counts import as export and shows power with the wrong sign. Both are fixed
here, once, right after the driver, so every later step (energy, carbon,
rules, probe) sees primary-side values in the right direction.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.base import DeviceBase
from config.carriers import APPARENT, CURRENT, ENERGY, POWER, VOLTAGE
from domain.reading import Reading


def factor(unit: str, ct: float, pt: float) -> float:
    """Multiplier from secondary to primary side for a value in `unit`."""
    unit = unit.casefold()
    if unit in CURRENT:
        return ct
    if unit in VOLTAGE:
        return pt
    if unit in POWER | APPARENT | ENERGY:
        return ct * pt
    return 1.0


def swapped(name: str) -> str | None:
    """The counterpart of an import_* / export_* point name."""
    for a, b in (("import_", "export_"), ("export_", "import_")):
        if name.startswith(a):
            return b + name.removeprefix(a)
    return None


@dataclass(frozen=True, slots=True)
class Wiring:
    """Per point: its multiplier and whether it changes sign; per reversed counter, the
    name its register really answers to."""

    factors: dict[str, float]
    negate: frozenset[str]
    rename: dict[str, str]  # import_kwh -> export_kwh and back, on a reversed meter

    @classmethod
    def of(cls, device: DeviceBase) -> Wiring:
        if device.ct_ratio == device.pt_ratio == 1 and not device.reverse:
            return NEUTRAL  # most meters: no point to look at (0.2 s of start-up at 5,000)
        names = {p.name for p in device.points}
        factors = {p.name: factor(p.unit, device.ct_ratio, device.pt_ratio) for p in device.points}
        negate: frozenset[str] = frozenset()
        rename: dict[str, str] = {}
        if device.reverse:
            negate = frozenset(p.name for p in device.points if p.unit.casefold() in POWER)
            for name in names:
                other = swapped(name)
                if other in names:
                    rename[name] = other
        if not negate and not rename and all(f == 1.0 for f in factors.values()):
            return NEUTRAL  # shared: 0.86 KB a meter less (tracemalloc, 200 vs 1,000 meters)
        return cls(factors, negate, rename)

    def apply(self, readings: list[Reading]) -> list[Reading]:
        if self is NEUTRAL:  # nothing to change: decided once in `of`, not on every poll
            return readings
        out = []
        for reading in readings:
            name = self.rename.get(reading.point, reading.point)
            value = reading.value
            if value is not None:
                value *= self.factors.get(name, 1.0)
                if name in self.negate:
                    value = -value
            out.append(reading._replace(point=name, value=value))
        return out


NEUTRAL = Wiring({}, frozenset(), {})  # a meter wired as its config says: nothing to do
