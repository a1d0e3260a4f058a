"""The regression case of each DL/T 645 profile (tests/drivers/profile_cases/<profile>.yaml),
polled whole: the driver reads a meter on a pseudo-terminal that sends exactly the case's reply
frames, in the profile's edition, and every point is the case's value.

tests/drivers/test_profile_cases.py decodes the same frames through the codec alone; here the
link, the request matching and the edition's function codes are in the path too. The meter is
tests/fixtures/dlt645_std.py, written from the standards, not from the driver's codec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import load_profile
from config.profiles import list_profiles
from domain.reading import Quality
from drivers.dlt645.codec import (
    parse,
)
from drivers.dlt645.settings import Dlt645Device, Dlt645Point
from tests.fixtures.dlt645 import driver
from tests.fixtures.dlt645_std import Bus, Meter

pytestmark = pytest.mark.timeout(30)

CASES = Path(__file__).resolve().parents[1] / "profile_cases"
PROFILES = [name for name in list_profiles() if load_profile(name).profile.protocol == "dlt645"]


def case(profile: str) -> tuple[list[Dlt645Point], dict[str, Any]]:
    points = load_profile(profile).profile.points
    data = yaml.safe_load((CASES / f"{profile}.yaml").read_text(encoding="utf-8"))
    return [p for p in points if isinstance(p, Dlt645Point)], data


def test_both_editions_have_a_profile() -> None:
    """The 2007 and the 1997 profile are shipped (and so checked below)."""
    assert {"dlt645-2007-energy", "dlt645-1997-energy"} <= set(PROFILES)


@pytest.mark.parametrize("profile", PROFILES)
async def test_the_driver_polls_the_case_frames_from_a_meter(profile: str) -> None:
    """The same frames sent by a meter on a line: the driver reads every point good, and
    each value is the case's."""
    points, data = case(profile)
    edition = "1997" if len(points[0].di) == 4 else "2007"
    replies = {di: bytes.fromhex(text) for di, text in data["dlt645"].items()}
    address = parse(next(iter(replies.values()))).address
    dev = Dlt645Device(
        name="m",
        profile=profile,
        dlt645={"port": "", "parity": "N", "address": address, "edition": int(edition)},
        points=points,
    )
    async with Bus([Meter(address, edition, replies=replies)]) as line:
        dev = dev.model_copy(update={"dlt645": dev.dlt645.model_copy(update={"port": line.port})})
        async with driver(dev) as d:
            readings = await d.read()
    assert all(r.quality is Quality.GOOD for r in readings), [r.reason for r in readings]
    assert {r.point: r.value for r in readings} == pytest.approx(data["values"], rel=1e-6)
