"""The shape of `agent.yaml`: typed, validated once at load, never repaired.

Each field's description is what `edge-agent schema` publishes, so an editor
shows it as the technician types; keep them short and practical.
Cross-field rules (a counter must name a point of its device, and so on) live
in `config/checks/`, where they can point at the exact YAML node.

A device's model and a rule's writes come from the protocols in
drivers/registry.py; what every device has is in config/base.py (its names
are imported from there, not from here).
"""

from __future__ import annotations

import functools
import operator
import zoneinfo
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, Discriminator, Field, Tag, create_model, field_validator

from cloud_sync.http.settings import HttpSettings
from cloud_sync.registry import KINDS
from config.base import Carrier, DestinationBase, DeviceBase, Name, Strict
from config.quantities import described
from config.units import Duration, Size
from drivers.registry import PROTOCOLS, WRITES, spec_of
from drivers.spec import WriteModel

# --- identity -----------------------------------------------------------------

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_digit(code: str) -> str:
    """The 18th character of a unified social credit code (GB 32100-2015)."""
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


class Gateway(Strict):
    """Who and where this gateway is: every batch is tagged with it."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="This gateway's id, unique on the central platform; part of every batch key.",
    )
    enterprise_id: str = Field(
        pattern=r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$",
        description="Unified social credit code of the enterprise (18 characters, GB 32100).",
    )
    region_code: str = Field(
        pattern=r"^[1-8]\d{5}$",
        description='GB/T 2260 administrative division, six digits, quoted: "510100".',
    )
    industry_code: str = Field(
        pattern=r"^[A-T](\d{2}|\d{3}|\d{4})?$",
        description="GB/T 4754-2017 industry code: section letter and up to four digits (C3011).",
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        description="IANA time zone; interval boundaries and days follow it.",
    )

    @field_validator("region_code", mode="before")
    @classmethod
    def _region_as_text(cls, value: Any) -> Any:
        # An unquoted 510100 is unambiguous (no division code starts with 0).
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America"
            raise ValueError(f"unknown time zone {value!r} (for example Asia/Shanghai)") from None
        return value


# --- buffer and sync ----------------------------------------------------------


class Buffer(Strict):
    """The SQLite store-and-forward buffer."""

    path: str = Field(
        default="${STATE_DIRECTORY:-/var/lib/edge-agent}/buffer.db",
        description="SQLite file of the store-and-forward buffer; ${VAR} is expanded.",
    )
    max_size: Size = Field(
        default=2 * 10**9,
        ge=100_000,
        description="Upper bound of the buffer file on disk (its WAL adds a few MB). When it "
        "is full, the oldest raw samples go first, then (with drop_synced) the oldest "
        "acknowledged records; unsent intervals and events never: new intervals are held "
        "in memory until there is room (events go to a small room beyond it), and a "
        "buffer_full event says what was dropped.",
    )
    drop_synced: bool = Field(
        default=False,
        description="When the buffer is full and no raw samples are left, drop the oldest "
        "records the platform already acknowledged (kept 7 days for audits otherwise).",
    )
    raw_retention: Duration = Field(
        default=0.0, description="Keep raw samples this long (0: do not store raw samples)."
    )


class FactorOverride(Strict):
    """A plant's own factor for one carrier, in the carrier's reported unit, with its source."""

    co2: float | None = Field(
        default=None,
        ge=0,
        description="kgCO2 per unit of the carrier (kWh, m3, kg, MJ, t), replacing the "
        "shipped one.",
    )
    tce: float | None = Field(
        default=None, ge=0, description="kgce per unit of the carrier, replacing GB/T 2589's."
    )
    source: str = Field(
        min_length=3,
        description="Where the figure comes from (a lab analysis, the supplier's NCV, a "
        "contract): it travels with every interval instead of the shipped source.",
    )
    year: int | None = Field(default=None, ge=1990, le=2100, description="Data year, if any.")


class Emissions(Strict):
    """Intervals, and the factors that turn energy into standard coal and CO2."""

    factor_set: str = Field(
        default="cn-mee-2022",
        description="Shipped factor set (series and data year of the grid factor): "
        "cn-mee-2021 to cn-mee-2023 (MEE/NBS), cn-carbon-market-2021/2022 (carbon-market "
        "reporting factor, national only).",
    )
    grid: str | None = Field(
        default=None,
        description="Province of the grid factor (sichuan, chongqing) or national; in a "
        "cn-mee set also national_fossil or national_excl_market_nonfossil (the other "
        "national measures, only by these ids); default: the province of "
        "gateway.region_code.",
    )
    intervals: list[Duration] = Field(
        default=[60.0, 900.0],
        min_length=1,
        description="Interval lengths, aligned to the local clock; each must divide an hour "
        "(1m, 5m, 15m, 30m, 1h ...) or be 1d (from local midnight).",
    )
    overrides: dict[Carrier, FactorOverride] = Field(
        default={},
        description="The plant's own factors per carrier, each with a required source: "
        "e.g. natural_gas: {co2: 2.05, source: 'supplier NCV 2026-03'}.",
    )


# --- devices and destinations: one model per protocol or kind, from the registries ----


def _keyed(models: dict[str, type[BaseModel]], error: str, what: str) -> Any:
    """A union of `models` chosen by which of their keys an item has: a device by its
    protocol's key (modbus_tcp: ...), a destination by its kind's (http: ...). Anything
    but exactly one key is the `error` (config/errors.py words it). The tags contain '='
    so that in an error's path they are never mistaken for a YAML key."""

    def key_of(value: Any) -> str | None:
        if isinstance(value, BaseModel):
            present = [k for k in models if getattr(value, k, None) is not None]
        elif isinstance(value, dict):
            present = [k for k in models if k in value]
        else:
            return None
        return f"key={present[0]}" if len(present) == 1 else None

    tagged = [Annotated[model, Tag(f"key={key}")] for key, model in models.items()]
    return Annotated[
        functools.reduce(operator.or_, tagged),
        Discriminator(
            key_of,
            custom_error_type=error,
            custom_error_message=f"{what} needs exactly one of {', '.join(models)}",
        ),
    ]


# built from the registries at run time: to a type checker a device (a destination) is
# what every device has, and a protocol's own fields are reached by narrowing to its model
if TYPE_CHECKING:
    Device: TypeAlias = DeviceBase
    Destination: TypeAlias = DestinationBase
else:
    Device = _keyed({k: s.device for k, s in PROTOCOLS.items()}, "device_protocol", "a device")
    Destination = _keyed(
        {k: s.destination for k, s in KINDS.items()}, "destination_kind", "a destination"
    )


def protocol_of(device: DeviceBase) -> str:
    """The device's protocol key: 'modbus_tcp', 'opcua' ... (see drivers.registry)."""
    return spec_of(device).key


# --- rules (evaluated by agent/rules.py) ---------------------------------------


class _Writes(Strict):
    """A rule's action: one optional field per write a protocol serves (RuleAction, below,
    adds them from drivers.registry); config checks ask for exactly one."""

    def writes(self) -> list[tuple[str, WriteModel]]:
        """(key, write) of each write given: exactly one in a valid config."""
        return [(key, w) for key in WRITES if (w := getattr(self, key)) is not None]

    @property
    def write(self) -> WriteModel | None:
        """The one write (None if not exactly one: config checks report that)."""
        given = self.writes()
        return given[0][1] if len(given) == 1 else None


if TYPE_CHECKING:
    RuleAction: TypeAlias = _Writes  # its fields come from the registry at run time
else:
    RuleAction = create_model(
        "RuleAction",
        __base__=_Writes,
        __module__=__name__,
        __doc__="What to do locally when the alarm is raised: exactly one of the writes.",
        **{
            key: (w.model | None, Field(default=None, description=w.description))
            for key, w in WRITES.items()
        },
    )


class Rule(Strict):
    """An overshoot alarm: raised above (or below) a limit, cleared with hysteresis."""

    name: Name
    device: str | None = Field(default=None, description="Device watched; omit for the site.")
    quantity: str = Field(description=described())  # from the table in config/quantities.py
    above: float | None = Field(default=None, description="Raise when the quantity exceeds this.")
    below: float | None = Field(default=None, description="Raise when it falls under this.")
    clear_below: float | None = Field(
        default=None,
        description="With above: clear only once back under this (hysteresis; "
        "default: 2% of the limit under it).",
    )
    clear_above: float | None = Field(
        default=None,
        description="With below: clear only once back over this (hysteresis; "
        "default: 2% of the limit over it).",
    )
    for_: Duration = Field(
        default=0.0,
        alias="for",
        description="Minimum duration past the limit, on end, before raising.",
    )
    severity: Literal["info", "warning", "critical"] = Field(
        default="warning", description="Severity of the raised event."
    )
    action: RuleAction | None = Field(
        default=None,
        description="Local action: written when raised, undone (coil or Boolean node: the "
        "opposite, register or numeric node: 0) when cleared.",
    )


# --- metrics and health (agent/metrics.py) -----------------------------------


class Http(Strict):
    """The local endpoint for /healthz and /metrics (Prometheus text format)."""

    enabled: bool = Field(default=True, description="Serve /healthz and /metrics.")
    listen: str = Field(
        default="127.0.0.1:9108",
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$",
        description="host:port to listen on; keep 127.0.0.1 unless a firewall guards the port.",
    )

    @field_validator("listen")
    @classmethod
    def _port_in_range(cls, value: str) -> str:
        port = int(value.rpartition(":")[2])
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is out of range (0 to 65535), e.g. 127.0.0.1:9108")
        return value


# --- the whole file -----------------------------------------------------------


class Config(Strict):
    """The top level of agent.yaml: one section per key."""

    gateway: Gateway
    buffer: Buffer = Buffer()
    sync: HttpSettings = Field(description="The central platform: the destination named 'sync'.")
    destinations: list[Destination] = Field(
        default=[],
        description="More platforms to deliver to, each from the same buffer at its own pace.",
    )
    emissions: Emissions = Emissions()
    devices: list[Device] = Field(default=[], description="Meters to poll.")
    rules: list[Rule] = Field(default=[], description="Overshoot alarms, evaluated locally.")
    http: Http = Field(default=Http(), description="Local /healthz and /metrics endpoint.")
