"""Factor sets: the grid series of one data year, with sources and scopes."""

from __future__ import annotations

import pytest
import yaml

from config.factors import (
    FACTORS_FILE,
    FUELS,
    Factor,
    UnknownFactorSet,
    factor_set_names,
    load_factor_set,
    province_for,
)
from tests.fixtures.config import GATEWAY, METER, Load

CO2_PER_C = 44 / 12
KJ_PER_KCAL = 4.1816  # GB/T 2589's NCVs in kJ are kcal x 4.1816 (shared/reference/factors.yaml)


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
        "unknown factor set 'cn-mee-2030' (known: cn-mee-2021, cn-mee-2022, cn-mee-2023, "
        "cn-carbon-market-2021, cn-carbon-market-2022)"
    )


def test_a_province_without_data_is_a_key_error() -> None:
    """There is no silent fallback to the national factor."""
    with pytest.raises(KeyError, match="no grid factor for 'guangdong' in cn-mee-2022"):
        load_factor_set("cn-mee-2022").grid("guangdong")


# --- brought in line with shared/reference/factors-check.md (2026-12) -------------


@pytest.mark.parametrize(
    "factor_set, grid, value",
    [
        ("cn-mee-2023", "chongqing", 0.5581),  # "confirmed (3 sources)"
        ("cn-mee-2021", "national_excl_market_nonfossil", 0.5942),
        ("cn-mee-2021", "national_fossil", 0.8426),
        ("cn-mee-2022", "national_fossil", 0.8325),
    ],
)
def test_a_figure_two_sources_now_agree_on_is_corroborated(
    factor_set: str, grid: str, value: float, load: Load
) -> None:
    """The second check confirmed these: they are corroborated, and a Chongqing plant
    on the 2023 set gets no 'check it against' warning any more."""
    factor = load_factor_set(factor_set).grid(grid)
    assert (factor.value, factor.verification) == (value, "corroborated")
    chongqing = GATEWAY.replace('"510100"', '"500103"') + "emissions: {factor_set: cn-mee-2023}\n"
    assert load(chongqing + METER).warnings == []


def test_figures_still_from_one_source_stay_single_source() -> None:
    """The 2021 provincial figures were not confirmed again: they keep their level."""
    factors = load_factor_set("cn-mee-2021")
    assert {factors.grid(p).verification for p in ("sichuan", "chongqing")} == {"single_source"}


def test_the_other_national_measures_are_reachable_only_by_their_own_ids() -> None:
    """'national' and every region code give the national or provincial average; the
    fossil-only and excluding-market-non-fossil measures answer only to their own grid
    ids, with factor ids of their own."""
    for name in factor_set_names():
        factors = load_factor_set(name)
        reached = {factors.province_for(f"{prefix:02d}0000") for prefix in range(100)}
        assert reached <= {None, "sichuan", "chongqing"}
        assert factors.grid("national").id.endswith(f"national_{factors.data_year}")
    mee = load_factor_set("cn-mee-2023")
    measures = {g: mee.grid(g) for g in ("national_fossil", "national_excl_market_nonfossil")}
    assert {g: (f.id, f.value) for g, f in measures.items()} == {
        "national_fossil": ("cn_national_fossil_2023", 0.8273),
        "national_excl_market_nonfossil": ("cn_national_excl_market_nonfossil_2023", 0.6096),
    }
    assert mee.grid("national").value not in {f.value for f in measures.values()}
    assert mee.national == {"national", *measures}


def test_a_national_measure_is_chosen_whatever_the_region(load: Load) -> None:
    """A Chengdu plant that buys green power separately may write the measure's id."""
    text = GATEWAY + "emissions: {grid: national_excl_market_nonfossil}\n" + METER
    loaded = load(text)
    assert (loaded.config.emissions.grid, loaded.warnings) == ("national_excl_market_nonfossil", [])


def test_the_carbon_market_factor_is_a_set_of_its_own() -> None:
    """The carbon-market reporting factor is another series: only its own factor set
    gives it, under its own factor id and notice, and it has no provinces or measures."""
    market = {y: load_factor_set(f"cn-carbon-market-{y}") for y in (2021, 2022)}
    national = {y: s.grid("national") for y, s in market.items()}
    assert {y: (f.id, f.value) for y, f in national.items()} == {
        2021: ("cn_carbon_market_national_2021", 0.5810),
        2022: ("cn_carbon_market_national_2022", 0.5703),
    }
    assert "2022\u3015111号" in national[2021].source
    assert "2023\u301543号" in national[2022].source
    assert all(list(s.grids) == ["national"] for s in market.values())
    mee = [load_factor_set(f"cn-mee-{y}").grid("national") for y in (2021, 2022, 2023)]
    assert not {f.value for f in mee} & {f.value for f in national.values()}


def test_every_fuel_default_names_its_family_and_matches_its_parameters() -> None:
    """Each fuel CO2 default says which of the two circulating families it uses, and
    what it says is true: value = NCV x CC x OF x 44/12, and a 'GB/T 2589 NCV' default's
    NCV is GB/T 2589's own (its kgce coefficient x 7 000 kcal x 4.1816 kJ)."""
    factors = load_factor_set("cn-mee-2022")
    entries = yaml.safe_load(FACTORS_FILE.read_text(encoding="utf-8"))["fuel_co2"]
    assert set(entries) == set(FUELS)
    for carrier, entry in entries.items():
        factor = factors.co2_factors[carrier]
        computed = entry["ncv"] * entry["cc"] * entry["of"] * CO2_PER_C
        assert factor.value == pytest.approx(computed, abs=6e-5), carrier
        if entry["family"] == "gbt2589_ncv":
            assert "family: GB/T 2589 NCV with guideline carbon content" in factor.source
            coal = factors.standard_coal(carrier)
            assert coal is not None
            assert entry["ncv"] == pytest.approx(coal.value * 7 * KJ_PER_KCAL, rel=2e-4), carrier
        else:
            assert "family: guideline table" in factor.source, carrier
    assert entries["natural_gas"]["family"] == "guideline_table"


@pytest.mark.parametrize(
    "carrier, standard, year",
    [
        ("natural_gas", "GB/T 32151.34-2024 table C.1", 2024),
        ("heat", "GB/T 32150-2025 §7.5.6-7.5.7", 2025),
        ("steam", "GB/T 32150-2025 §7.5.6-7.5.7", 2025),
    ],
)
def test_the_standard_that_is_now_the_source_is_named(
    carrier: str, standard: str, year: int
) -> None:
    """Natural gas's defaults are cited in GB/T 32151.34-2024 and purchased heat's 0.11
    tCO2/GJ is GB/T 32150-2025's: the source (and so the year) of the factor says so."""
    factor, _ = load_factor_set("cn-mee-2023").co2(carrier, "sichuan")
    assert factor is not None
    assert factor.source.startswith(standard)
    assert factor.year == year
