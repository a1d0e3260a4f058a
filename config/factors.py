"""Emission factors and standard-coal coefficients, as the carbon step uses them.

The figures live in `config/factors/cn.yaml` with their sources; a factor set
picks the series and data year of the grid factor. Every `Factor` carries its id,
source, year and verification level, because each interval sent to the central
platform names the factor it was computed with. The other national measures of
the MEE/NBS series (fossil only, excluding market-traded non-fossil power) are
grid ids of their own, never what `national` or a region code gives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from config.carriers import reported_unit

if TYPE_CHECKING:
    from config.base import Carrier
    from config.models import FactorOverride

FACTORS_FILE = Path(__file__).parent / "factors" / "cn.yaml"
FUELS = ("natural_gas", "raw_coal", "diesel", "gasoline", "lpg", "fuel_oil")
HEAT = ("heat", "steam")
_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")


@dataclass(frozen=True)
class Factor:
    """One coefficient and where it comes from."""

    id: str
    value: float
    unit: str
    source: str
    year: int | None
    verification: str


class FactorNotFound(KeyError):
    """A factor that is not in the data; the message says which ones are."""

    def __str__(self) -> str:
        return str(self.args[0])


class UnknownFactorSet(FactorNotFound):
    """A factor set name that is not shipped."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown factor set {name!r} (known: {', '.join(known)})")
        self.name, self.known = name, known


@dataclass(frozen=True)
class FactorSet:
    """The grid series of one data year, with the fuel and heat factors that go with it."""

    name: str
    data_year: int
    grids: Mapping[str, Factor] = field(repr=False)
    provinces: Mapping[str, str] = field(repr=False)
    standard_coal_factors: Mapping[str, Factor] = field(repr=False)
    co2_factors: Mapping[str, Factor] = field(repr=False)
    national: frozenset[str] = frozenset({"national"})
    """The grid ids that are national measures: chosen whatever the region code."""

    def overridden(self, overrides: Mapping[Carrier, FactorOverride]) -> FactorSet:
        """This set with a plant's own factors (config `emissions.overrides`): each keeps
        its source note and is marked verification 'plant'. An electricity co2 override
        replaces the grid factor of every province."""
        grids, coal, co2 = (
            dict(self.grids),
            dict(self.standard_coal_factors),
            dict(self.co2_factors),
        )
        for carrier, o in overrides.items():
            if o.tce is not None:
                unit = f"kgce/{reported_unit(carrier)}"
                coal[carrier] = Factor(
                    f"plant_{carrier}_tce", o.tce, unit, o.source, o.year, "plant"
                )
            if o.co2 is not None:
                unit = f"kgCO2/{reported_unit(carrier)}"
                own = Factor(f"plant_{carrier}", o.co2, unit, o.source, o.year, "plant")
                if carrier == "electricity":
                    grids = {region: own for region in grids}
                else:
                    co2[carrier] = own
        return replace(
            self,
            grids=MappingProxyType(grids),
            standard_coal_factors=MappingProxyType(coal),
            co2_factors=MappingProxyType(co2),
        )

    def grid(self, province: str) -> Factor:
        """The grid factor of a province (or 'national') for this set's data year."""
        try:
            return self.grids[province]
        except KeyError:
            known = ", ".join(self.grids)
            message = f"no grid factor for {province!r} in {self.name} (known: {known})"
            raise FactorNotFound(message) from None

    def province_for(self, region_code: str) -> str | None:
        """The province of a GB/T 2260 code, from its two-digit prefix, if we have its data."""
        return self.provinces.get(str(region_code)[:2])

    def standard_coal(self, carrier: str) -> Factor | None:
        """kgce per unit of the carrier (GB/T 2589-2020)."""
        return self.standard_coal_factors.get(carrier)

    def co2(self, carrier: str, province: str) -> tuple[Factor | None, int | None]:
        """The CO2 factor of a carrier and its scope: 1 burnt on site, 2 purchased."""
        if carrier == "electricity":
            return self.grid(province), 2
        if carrier in HEAT:
            return self.co2_factors.get(carrier), 2
        if carrier in FUELS:
            return self.co2_factors.get(carrier), 1
        if carrier == "water":
            return None, None
        raise ValueError(f"unknown carrier {carrier!r}")


_SHIPPED: dict[str, Any] = {}  # the shipped file's data, once read or handed over


def _data() -> dict[str, Any]:
    """The shipped file, read once: it does not change while the agent runs (libyaml when
    present: 1 ms instead of 12)."""
    if not _SHIPPED:
        import yaml  # here, not at the top: see `shipped`

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        _SHIPPED.update(yaml.load(FACTORS_FILE.read_text(encoding="utf-8"), Loader=loader))
    return _SHIPPED


def shipped(data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shipped file's data as read so far ({} if not yet); given `data`, that is it.

    The daemon's loader child reads the file with the config and hands its data over
    (config/loader.py): the daemon then never reads YAML, nor imports PyYAML (0.9 MiB).
    """
    if data and not _SHIPPED:
        _SHIPPED.update(data)
    return _SHIPPED


def province_for(region_code: str) -> str | None:
    """The province key of a GB/T 2260 code (510100 -> sichuan), if the data has one."""
    return {str(k): v for k, v in _data()["provinces"].items()}.get(str(region_code)[:2])


def factor_set_names() -> tuple[str, ...]:
    return tuple(_data()["factor_sets"])


def load_factor_set(name: str) -> FactorSet:
    """The named set (e.g. cn-mee-2022); UnknownFactorSet lists the known ones."""
    data = _data()
    if name not in data["factor_sets"]:
        raise UnknownFactorSet(name, factor_set_names())
    spec = data["factor_sets"][name]
    year, sources = int(spec["data_year"]), data["sources"]
    grid_source, prefix = sources[spec["grid_source"]], spec.get("id_prefix", "cn")
    table = dict(data[spec.get("grid_table", "grid")])
    measures = data["national_measures"] if "grid_table" not in spec else {}
    grids = {
        region: _factor(f"{prefix}_{region}_{year}", by_year[year], "kgCO2/kWh", grid_source, year)
        for region, by_year in (table | measures).items()
        if year in by_year
    }
    coal = {
        carrier: _factor(f"gbt2589_{carrier}", entry, entry["unit"], sources["gbt2589"])
        for carrier, entry in data["standard_coal"].items()
    }
    co2 = {
        carrier: _factor(f"ndrc_{carrier}", entry, entry["unit"], _fuel_source(entry, data))
        for carrier, entry in data["fuel_co2"].items()
    }
    co2 |= {
        carrier: _factor(f"ndrc_{carrier}", entry, entry["unit"], entry["source"])
        for carrier, entry in data["heat_co2"].items()
    }
    return FactorSet(
        name=name,
        data_year=year,
        grids=MappingProxyType(grids),
        provinces=MappingProxyType({str(k): v for k, v in data["provinces"].items()}),
        standard_coal_factors=MappingProxyType(coal),
        co2_factors=MappingProxyType(co2),
        national=frozenset({"national", *measures}) & frozenset(grids),
    )


def _fuel_source(entry: dict[str, Any], data: dict[str, Any]) -> str:
    """A fuel default's source: the standard that now cites it, if any, then its family
    (guideline table, or GB/T 2589 NCV with guideline carbon content), which two
    circulating sets of defaults differ by (shared/reference/factors-check.md)."""
    family = data["fuel_families"][entry["family"]]
    return f"{entry['source']}; {family}" if "source" in entry else family


def _factor(
    factor_id: str, entry: dict[str, Any], unit: str, source: str, year: int | None = None
) -> Factor:
    """A Factor from one entry; the year, unless given, is that of its source document."""
    if year is None:
        found = _YEAR.search(source)
        year = int(found.group()) if found else None
    return Factor(factor_id, float(entry["value"]), unit, source, year, entry["verification"])
