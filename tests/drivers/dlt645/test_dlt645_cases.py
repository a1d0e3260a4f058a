"""The regression case of each DL/T 645 profile (tests/drivers/profile_cases/<profile>.yaml):
every DI's whole reply frame gives every point's expected value, through the codec and through
the driver polling a meter that sends exactly those frames.

The frames come from published worked examples and from the standards' rules (see each case's
comment), never from the driver's codec; the meter is tests/fixtures/dlt645_std.py."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import load_profile
from config.profiles import list_profiles
from domain.reading import Quality
from drivers.dlt645.codec import (
    EDITION_1997,
    EDITION_2007,
    decode_point,
    parse,
    read_data,
    reply_data,
)
from drivers.dlt645.driver import Dlt645Driver
from drivers.dlt645.settings import Dlt645Device, Dlt645Point
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
def test_every_point_has_a_source_and_a_frame_and_a_value(profile: str) -> None:
    """Each point cites where the standard defines it; the case has its reply and value."""
    points, data = case(profile)
    assert all(p.source for p in points)
    assert set(data["values"]) == {p.name for p in points}
    assert set(data["dlt645"]) == {p.di for p in points}
    assert data["source"]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_case_frames_decode_to_the_case_values(profile: str) -> None:
    """Each whole reply frame, through the codec, gives the point's value (rel 1e-6)."""
    points, data = case(profile)
    for point in points:
        edition = EDITION_1997 if len(point.di) == 4 else EDITION_2007
        reply = parse(bytes.fromhex(data["dlt645"][point.di]))
        raw = reply_data(read_data(reply.address, point.di, edition), reply)
        expected = data["values"][point.name]
        assert math.isclose(decode_point(raw, point), expected, rel_tol=1e-6), point.name


@contextlib.asynccontextmanager
async def driver(dev: Dlt645Device) -> AsyncIterator[Dlt645Driver]:
    made = Dlt645Driver(dev)
    try:
        yield made
    finally:
        await made.close()


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
