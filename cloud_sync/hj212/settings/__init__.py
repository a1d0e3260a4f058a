"""The settings of an HJ 212 destination, and its spec.

An environmental platform gives the plant its address, a password (PW), a
system code (ST), one MN per monitored facility and the code of each figure
it expects; the technician writes them here. What each figure is in our terms
(an energy counter's interval total, a point's average) is said under
`codes`, keyed by the figure, so nothing is guessed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cloud_sync.hj212.settings.checks import cross_check
from cloud_sync.hj212.settings.figures import statistics
from cloud_sync.spec import DestinationSpec
from config.base import DestinationBase, Name, Strict
from config.units import Duration

Statistic = Literal["Cou", "Avg", "Min", "Max"]
Data = Literal["minute", "hour", "day"]


class Code(Strict):
    """One figure under the platform's code."""

    code: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9]{0,15}$",
        description="The platform's code for this figure, as its documents give it "
        "(HJ 212-2017: a05001 is CO2; electricity codes come from the province).",
    )
    as_: Statistic | list[Statistic] = Field(
        alias="as",
        description="What is sent of it per interval: Cou (the total: only for an energy "
        "counter or a record figure), Avg, Min, Max (of a point's readings). Real-time data "
        "(realtime:) sends a point's latest value as Rtd.",
    )
    decimals: int = Field(default=2, ge=0, le=6, description="Digits after the decimal point.")

    @property
    def statistics(self) -> tuple[Statistic, ...]:
        return tuple(self.as_) if isinstance(self.as_, list) else (self.as_,)


class MonitoringPoint(Strict):
    """A facility the platform knows under one MN, and the devices that meter it."""

    mn: str = Field(
        pattern=r"^([0-9]{14}|[0-9A-F]{24})$",
        description="The MN the platform assigned: 14 digits, or 24 characters 0-9 A-F "
        "(HJ 212-2017, 6.3.2).",
    )
    devices: list[Name] = Field(min_length=1, description="Devices whose figures it sends.")


class Hj212Settings(Strict):
    """Data to an environmental platform over TCP, HJ 212-2017."""

    host: str = Field(min_length=1, description="The platform's address.")
    port: int = Field(ge=1, le=65535, description="Its TCP port.")
    pw: str = Field(
        pattern=r"^[A-Za-z0-9]{6}$",
        description="The access password the platform gave (6 letters or digits).",
    )
    st: str = Field(
        pattern=r"^([0-8][0-9]|9[02-9])$",
        description="The system code the platform gave (two digits, e.g. 32; 91 is reserved "
        "for answers).",
    )
    version: Literal[2017, 2025] = Field(
        default=2017, description="The edition of HJ 212 the platform speaks."
    )
    monitoring_points: list[MonitoringPoint] = Field(min_length=1, description="One entry per MN.")
    codes: dict[str, Code] = Field(
        min_length=1,
        description="Figure -> its code. A figure is a point name (every device of an MN "
        "that has it), `device.point` for one device, or a record figure: energy (in the "
        "carrier's unit), kwh, co2_kg, tce_kg (also as `device.co2_kg`).",
    )
    data: list[Data] | None = Field(
        default=None,
        min_length=1,
        description="What is sent: minute (CN 2051, from the shortest interval), hour "
        "(CN 2061, needs 1h in emissions.intervals), day (CN 2031, needs 1d). Default: each "
        "that emissions.intervals allows.",
    )
    realtime: Duration | None = Field(
        default=None,
        ge=30,
        le=3600,
        description="Real-time data (CN 2011) this often; the platform may change it "
        "(CN 1062), and its choice is kept across restarts.",
    )
    every: Duration = Field(
        default=10.0, gt=0, description="How often closed intervals are looked for and sent."
    )
    overtime: Duration = Field(
        default=10.0,
        gt=0,
        description="How long to wait for the platform's answer (CN 9014) to a frame.",
    )
    recount: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Resends of an unanswered frame (same QN) before it waits for the next run.",
    )


class Hj212Destination(DestinationBase):
    """Data to an environmental platform (HJ 212 over TCP)."""

    hj212: Hj212Settings = Field(description="The platform, its codes and what it is sent.")


SPEC = DestinationSpec(
    key="hj212",
    settings=Hj212Settings,
    destination=Hj212Destination,
    make="cloud_sync.hj212.uplink:make",
    summary="HJ 212-2017 over TCP to a provincial environmental platform (minute, hour, "
    "day and real-time data, answered commands)",
    cross_check=cross_check,
    statistics=statistics,
)
