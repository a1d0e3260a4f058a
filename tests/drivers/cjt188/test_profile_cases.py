"""Each CJ/T 188 profile's regression case (tests/drivers/profile_cases/<profile>.yaml):
the meter's whole reply frame for each DI, decoded by the real codec, gives every point.

Written here because tests/drivers/test_profile_cases.py (the one test over every
profile, helper prof-a's) is not on this branch; its `cjt188` section reads the same
files the same way: DI -> the whole reply frame, hex.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from config.loader import load_profile
from config.profiles import list_profiles
from drivers.cjt188.codec import check_type, decode_field, parse, read_data, reply_data
from drivers.cjt188.settings import Cjt188Point

CASES = Path(__file__).resolve().parent.parent / "profile_cases"
PROFILES = [n for n in list_profiles() if load_profile(n).profile.protocol == "cjt188"]


def test_every_cjt188_profile_has_a_case() -> None:
    assert PROFILES == ["cjt188-gas", "cjt188-heat", "cjt188-water"]
    assert all((CASES / f"{name}.yaml").is_file() for name in PROFILES)


@pytest.mark.parametrize("name", PROFILES)
def test_the_case_decodes_to_every_point(name: str) -> None:
    case = yaml.safe_load((CASES / f"{name}.yaml").read_text())
    profile = load_profile(name).profile
    points = [p for p in profile.points if isinstance(p, Cjt188Point)]
    got: dict[str, float] = {}
    for di, hexframe in case["cjt188"].items():
        reply = parse(bytes.fromhex(hexframe.replace(" ", "")))
        request = read_data(reply.meter_type, reply.address, di, reply.data[2], high_first=True)
        data = reply_data(request, reply)
        check_type(reply.meter_type, reply)
        for point in points:
            if point.di.upper() == di.upper():
                value = decode_field(data, di, reply.meter_type, point.field, point.unit)
                got[point.name] = value * point.scale + point.offset
    assert set(got) == set(case["values"]) == {p.name for p in points}
    for point, expected in case["values"].items():
        assert math.isclose(got[point], expected, rel_tol=1e-6), point


@pytest.mark.parametrize("name", PROFILES)
def test_every_point_says_where_the_standard_has_it(name: str) -> None:
    profile = load_profile(name).profile
    assert profile.source.startswith("CJ/T 188-2004")
    assert all(p.source and p.source.startswith("DI 901FH reply") for p in profile.points)
