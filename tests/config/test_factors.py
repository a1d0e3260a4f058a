"""Factor sets: the grid series of one data year, with sources and scopes."""

from __future__ import annotations

import pytest

from config.factors import Factor, UnknownFactorSet, load_factor_set, province_for


def test_a_grid_factor_carries_its_id_source_and_year() -> None:
    """Sichuan's 2022 grid factor is identified and sourced for the central platform."""
    factor = load_factor_set("cn-mee-2022").grid("sichuan")
    assert (factor.id, factor.value, factor.unit, factor.year) == (
        "cn_sichuan_2022",
        0.1404,
        "kgCO2/kWh",
        2022,
    )
    assert "2024年第33号" in factor.source
    assert factor.verification == "corroborated"


def test_the_data_year_picks_the_grid_factor() -> None:
    """Each set is one year of the MEE series."""
    assert [load_factor_set(f"cn-mee-{y}").grid("national").value for y in (2021, 2022, 2023)] == [
        0.5568,
        0.5366,
        0.5306,
    ]


def test_electricity_is_scope_2_at_the_provincial_grid_factor() -> None:
    """Purchased electricity uses the province's grid factor."""
    factors = load_factor_set("cn-mee-2022")
    assert factors.co2("electricity", "chongqing") == (factors.grid("chongqing"), 2)


def test_fuels_are_scope_1_and_heat_scope_2() -> None:
    """Gas burnt on site is scope 1; purchased steam and heat are scope 2; water has no CO2."""
    factors = load_factor_set("cn-mee-2022")
    gas, gas_scope = factors.co2("natural_gas", "sichuan")
    steam, steam_scope = factors.co2("steam", "sichuan")
    assert (gas_scope, steam_scope) == (1, 2)
    assert isinstance(gas, Factor) and gas.id == "ndrc_natural_gas"
    assert isinstance(steam, Factor) and steam.unit == "kgCO2/kg"
    assert factors.co2("water", "sichuan") == (None, None)


def test_standard_coal_follows_gbt_2589() -> None:
    """kgce per kWh of electricity is the GB/T 2589-2020 equivalent value."""
    coal = load_factor_set("cn-mee-2022").standard_coal("electricity")
    assert coal is not None
    assert (coal.id, coal.value, coal.unit, coal.year) == (
        "gbt2589_electricity",
        0.1229,
        "kgce/kWh",
        2020,
    )


def test_a_region_code_maps_to_its_province_by_prefix() -> None:
    """The two-digit GB/T 2260 prefix gives the province; an unknown one gives None."""
    assert (province_for("510100"), province_for("500103"), province_for("440300")) == (
        "sichuan",
        "chongqing",
        None,
    )
    assert load_factor_set("cn-mee-2022").province_for("510100") == "sichuan"


def test_an_unknown_factor_set_lists_the_known_ones() -> None:
    """The error is a KeyError whose message helps."""
    with pytest.raises(KeyError) as caught:
        load_factor_set("cn-mee-2030")
    assert isinstance(caught.value, UnknownFactorSet)
    assert str(caught.value) == (
        "unknown factor set 'cn-mee-2030' (known: cn-mee-2021, cn-mee-2022, cn-mee-2023)"
    )


def test_a_province_without_data_is_a_key_error() -> None:
    """There is no silent fallback to the national factor."""
    with pytest.raises(KeyError, match="no grid factor for 'guangdong' in cn-mee-2022"):
        load_factor_set("cn-mee-2022").grid("guangdong")
