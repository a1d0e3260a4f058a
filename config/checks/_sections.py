"""The checks of the sections: who the gateway is, where it sends, and its emissions."""

from __future__ import annotations

from collections.abc import Iterator

from cloud_sync.http.settings import SPEC as HTTP
from cloud_sync.registry import kind_of
from config.base import Carrier
from config.checks._parts import Parts
from config.errors import Document, NodePath, unknown
from config.factors import FactorSet, UnknownFactorSet, factor_set_names, load_factor_set
from config.models import uscc_check_digit
from config.units import DAY, HOUR, format_duration
from domain.errors import Problem


def check_gateway(parts: Parts, doc: Document) -> Iterator[Problem]:
    if parts.gateway is not None:
        code = parts.gateway.enterprise_id
        expected = uscc_check_digit(code)
        if code[17] != expected:
            message = (
                f"check digit is '{code[17]}' but GB 32100 gives '{expected}' for {code[:17]}: "
                "check the code for a typo"
            )
            yield doc.problem(("gateway", "enterprise_id"), message, severity="warning")


def check_destinations(parts: Parts, doc: Document) -> Iterator[Problem]:
    """Each destination's own checks (the central one's too), and one name for each: the
    buffer keeps a cursor per name, and `sync` is the central platform's."""
    if parts.sync is not None and HTTP.check is not None:
        yield from HTTP.check(parts.sync, ("sync",), doc)
    seen: dict[str, int] = {}
    for i, entry in parts.destinations.items():
        at: NodePath = ("destinations", i)
        if entry.name == "sync":
            message = "'sync' is the central platform of the sync: section; name this one apart"
            yield doc.problem((*at, "name"), message)
        elif entry.name in seen:
            line = doc.position(("destinations", seen[entry.name], "name"))[0]
            message = f"duplicate destination name '{entry.name}' (first at line {line})"
            yield doc.problem((*at, "name"), message)
        seen.setdefault(entry.name, i)
        kind = kind_of(entry)
        settings = kind.settings_of(entry)
        every = getattr(settings, "every", None)
        if entry.max_age is not None and every is not None and entry.max_age < 2 * every:
            message = (
                f"records older than {format_duration(entry.max_age)} are not sent to "
                f"'{entry.name}', which sends every {format_duration(every)}: some would "
                "age out before their first try; make max_age at least twice every"
            )
            yield doc.problem((*at, "max_age"), message, severity="warning")
        if parts.sync is not None and getattr(settings, "url", None) == parts.sync.url:
            message = (
                "the same endpoint as sync.url: every record would reach that platform "
                "twice, under two batch keys"
            )
            yield doc.problem((*at, kind.key, "url"), message, severity="warning")
        if kind.check is not None:
            yield from kind.check(settings, (*at, kind.key), doc)
        if kind.cross_check is not None:
            yield from kind.cross_check(settings, (*at, kind.key), doc, parts)


def check_emissions(parts: Parts, doc: Document) -> Iterator[Problem]:
    emissions = parts.emissions
    if emissions is None:
        return
    seen: set[int] = set()
    for i, seconds in enumerate(emissions.intervals):
        at: NodePath = ("emissions", "intervals", i)
        millis, text = round(seconds * 1000), format_duration(seconds)
        if seconds < 1:
            yield doc.problem(at, f"must be at least 1s (got {text})")
        elif millis != seconds * 1000 or not (HOUR * 1000 % millis == 0 or millis == DAY * 1000):
            # Aligned on the local clock: a day runs from local midnight (23h or 25h on DST days).
            message = f"must divide an hour (1m, 5m, 15m, 30m, 1h ...) or be 1d (got {text})"
            yield doc.problem(at, message)
        elif millis in seen:
            yield doc.problem(at, f"duplicate interval {text}")
        seen.add(millis)
    for carrier, override in emissions.overrides.items():
        at = ("emissions", "overrides", carrier)
        if override.co2 is None and override.tce is None:
            yield doc.problem(at, "an override needs co2: or tce: (or both)", key=True)
        elif carrier == "water" and override.co2 is not None:
            yield doc.problem((*at, "co2"), "water carries no CO2: remove co2:", key=True)
        elif carrier == "electricity" and override.co2 is not None:
            message = (
                "replaces the MEE/NBS grid factor in every interval; reporting to the "
                "government platform normally expects the official one"
            )
            yield doc.problem((*at, "co2"), message, severity="warning")
    try:
        factors = load_factor_set(emissions.factor_set)
    except UnknownFactorSet:
        message = unknown("factor set", emissions.factor_set, factor_set_names())
        yield doc.problem(("emissions", "factor_set"), message)
        return
    grid = emissions.grid
    if grid is not None and grid not in factors.grids:
        yield doc.problem(("emissions", "grid"), unknown("grid", grid, list(factors.grids)))
        return
    if parts.gateway is None:
        return  # the grid follows gateway.region_code: checked once that validates
    code = parts.gateway.region_code
    province = factors.province_for(code)
    if grid is None:
        if province not in factors.grids:
            message = (
                f"no provincial grid factor for region {code} in {factors.name}; set "
                "emissions.grid: national if your programme prescribes the national factor"
            )
            yield doc.problem(("gateway", "region_code"), message)
    elif grid not in factors.national and grid != province:
        where = f"which is in {province}" if province else f"which is not in {grid}"
        message = f"{grid} contradicts gateway.region_code {code}, {where}"
        yield doc.problem(("emissions", "grid"), message)
    yield from _unconfirmed(parts, doc, factors, grid or province)


_UNCONFIRMED = {
    "single_source": "taken from one public transcription",
    "memory": "recalled, not yet seen in a source",
}


def _unconfirmed(
    parts: Parts, doc: Document, factors: FactorSet, province: str | None
) -> Iterator[Problem]:
    """A shipped figure nobody could confirm is used only with a warning that says so,
    once per carrier metered, unless the plant overrides it with its own source."""
    emissions = parts.emissions
    assert emissions is not None
    metered: dict[Carrier, NodePath] = {}
    for i, device in parts.devices.items():
        if device.model.energy is not None:
            metered.setdefault(device.model.energy.carrier, ("devices", i, "energy", "carrier"))
    for carrier, at in metered.items():
        override = emissions.overrides.get(carrier)
        if carrier == "electricity":
            found = [factors.grids.get(province or "")]
        else:
            found = [factors.co2_factors.get(carrier), factors.standard_coal(carrier)]
        for factor in found:
            if factor is None or factor.verification not in _UNCONFIRMED:
                continue
            is_co2 = factor.unit.startswith("kgCO2")
            if override is not None and (override.co2 if is_co2 else override.tce) is not None:
                continue
            message = (
                f"the {factor.id} factor {factor.value:g} {factor.unit} is "
                f"{_UNCONFIRMED[factor.verification]}: check it against {factor.source}, "
                f"or set emissions.overrides.{carrier}.{'co2' if is_co2 else 'tce'} "
                "with the figure and its source"
            )
            yield doc.problem(at, message, severity="warning")
