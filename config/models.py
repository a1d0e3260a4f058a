"""The shape of `agent.yaml`: typed, validated once at load, never repaired.

Each field's description is what `edge-agent schema` publishes, so an editor
shows it as the technician types; keep them short and practical.
Cross-field rules (a counter must name a point of its device, and so on) live
in `config/checks.py`, where they can point at the exact YAML node.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from config.quantities import described
from config.units import Duration, Size

Name = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
        description="Letters, digits, '_' and '-', starting with a letter (at most 64).",
    ),
]

Carrier = Literal[
    "electricity",
    "natural_gas",
    "raw_coal",
    "diesel",
    "gasoline",
    "lpg",
    "fuel_oil",
    "steam",
    "heat",
    "water",
]
PointKind = Literal["gauge", "counter"]


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must never be silently ignored.

    NaN and infinity are refused too: `scale: .nan` would poison every value.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


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
        "acknowledged records; unsent intervals and events never: new ones are held in "
        "memory until there is room, and a buffer_full event says what was dropped.",
    )
    drop_synced: bool = Field(
        default=False,
        description="When the buffer is full and no raw samples are left, drop the oldest "
        "records the platform already acknowledged (kept 7 days for audits otherwise).",
    )
    raw_retention: Duration = Field(
        default=0.0, description="Keep raw samples this long (0: do not store raw samples)."
    )


class Sync(Strict):
    """Upload of batches to the central platform."""

    url: str = Field(
        pattern=r"^https?://[^\s/]+(/\S*)?$",
        description="The central platform's batch endpoint, e.g. https://host/api/v1/batches.",
    )
    token_file: str | None = Field(
        default=None,
        description="File holding the bearer token (systemd credential); ${VAR} is expanded.",
    )
    every: Duration = Field(default=60.0, gt=0, description="How often to send a batch.")
    max_batch: int = Field(default=5000, ge=1, le=100_000, description="Records per batch.")
    timeout: Duration = Field(default=30.0, gt=0, description="HTTP timeout of one request.")
    ca_file: str | None = Field(
        default=None,
        description="PEM file of the CA that signed the platform's certificate (a private "
        "CA); default: the system's trusted CAs. Verification is always on.",
    )
    client_cert: str | None = Field(
        default=None,
        description="PEM client certificate for mutual TLS (with client_key).",
    )
    client_key: str | None = Field(
        default=None,
        description="PEM private key of client_cert; a systemd credential path works here.",
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
        description="Shipped factor set (data year of the grid factor), e.g. cn-mee-2022.",
    )
    grid: str | None = Field(
        default=None,
        description="Province of the grid factor (sichuan, chongqing) or national; "
        "default: the province of gateway.region_code.",
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


# --- transports ---------------------------------------------------------------


class ModbusTcp(Strict):
    """A Modbus TCP server: the meter itself or a serial gateway."""

    host: str = Field(description="IP address or host name of the meter or gateway.")
    port: int = Field(default=502, ge=1, le=65535, description="TCP port.")
    unit: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id.")
    timeout: Duration = Field(default=2.0, gt=0, description="Reply timeout of one request.")
    framer: Literal["socket", "rtu"] = Field(
        default="socket",
        description="socket: Modbus TCP; rtu: RTU frames over TCP, for a serial-to-Ethernet "
        "converter in transparent mode.",
    )
    max_gap: int = Field(
        default=8,
        ge=0,
        le=124,
        description="Largest hole (registers) bridged to read neighbouring points in one request.",
    )


class ModbusRtu(Strict):
    """A Modbus RTU meter on an RS-485 bus; meters on one port are polled in turn."""

    port: str = Field(description="Serial device, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(default=9600, gt=0, description="Bits per second, as set on the meter.")
    parity: Literal["N", "E", "O"] = Field(default="N", description="None, even or odd.")
    stopbits: Literal[1, 2] = Field(default=1, description="Stop bits, as set on the meter.")
    unit: int = Field(default=1, ge=1, le=247, description="Modbus unit (slave) id on the bus.")
    timeout: Duration = Field(default=1.0, gt=0, description="Reply timeout of one request.")
    max_gap: int = Field(
        default=8,
        ge=0,
        le=124,
        description="Largest hole (registers) bridged to read neighbouring points in one request.",
    )


class OpcUa(Strict):
    """An OPC UA server; file paths expand ${VAR}."""

    endpoint: str = Field(pattern=r"^opc\.tcp://\S+$", description="opc.tcp://host:port/path")
    security: Literal["None", "Basic256Sha256/Sign", "Basic256Sha256/SignAndEncrypt"] = Field(
        default="None", description="Security policy and message mode."
    )
    mode: Literal["read", "subscribe"] = Field(
        default="read",
        description="read: poll every `poll`; subscribe: the server reports changes.",
    )
    username: str | None = Field(default=None, description="User name, if the server wants one.")
    password_file: str | None = Field(default=None, description="File holding the password.")
    certificate: str | None = Field(default=None, description="Client certificate file.")
    private_key: str | None = Field(
        default=None, description="Private key file of the certificate."
    )
    server_certificate: str | None = Field(
        default=None, description="The server's certificate, to trust it explicitly."
    )
    timeout: Duration = Field(default=5.0, gt=0, description="Timeout of one request.")
    publishing_interval: Duration | None = Field(
        default=None,
        gt=0,
        description="subscribe: how often the server sends what changed (default: the poll).",
    )
    sampling_interval: Duration | None = Field(
        default=None,
        gt=0,
        description="subscribe: how often the server samples counters, so every change between "
        "polls is kept (default: 1s, or the publishing interval if shorter); gauges are "
        "sampled once per publishing interval.",
    )
    certificate_dir: str = Field(
        default="${STATE_DIRECTORY:-/var/lib/edge-agent}/opcua",
        description="Where the agent keeps the certificate it makes for itself when security "
        "is not None and no certificate is given; ${VAR} is expanded.",
    )


class Dlt645(Strict):
    """A DL/T 645-2007 electricity meter on an RS-485 bus (8 data bits, 1 stop bit)."""

    port: str = Field(description="Serial device, e.g. /dev/ttyUSB1.")
    baudrate: Literal[1200, 2400, 4800, 9600] = Field(default=2400, description="Bits per second.")
    parity: Literal["N", "E", "O"] = Field(default="E", description="The standard uses even (8E1).")
    address: str = Field(
        pattern=r"^(\d{12}|A{12})$",
        description='Meter address, 12 digits as printed on the meter, quoted: "000012345678"; '
        '"AAAAAAAAAAAA" reaches the only meter of a point-to-point link.',
    )
    timeout: Duration = Field(default=1.0, gt=0, description="Reply timeout of one request.")

    @field_validator("address")
    @classmethod
    def _not_broadcast(cls, value: str) -> str:
        if value == "999999999999":
            raise ValueError(
                "999999999999 is the broadcast address, which meters never answer; "
                "write the meter's own address"
            )
        return value


# --- points -------------------------------------------------------------------

ModbusType = Literal[
    "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"
]
REGISTER_COUNT = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
    "bool": 1,
}


class PointBase(Strict):
    name: Name
    unit: str = Field(default="", description="Unit of the decoded value (kWh, kW, m3, ...).")
    kind: PointKind = Field(
        default="gauge", description="counter: a cumulative total; gauge: an instant value."
    )
    scale: float = Field(default=1.0, description="Decoded value = raw x scale + offset.")
    offset: float = Field(default=0.0, description="Added after scaling.")


class ModbusPoint(PointBase):
    """One value read from Modbus registers or bits."""

    address: int = Field(ge=0, le=65535, description="0-based register address (PDU address).")
    function: Literal["holding", "input", "coil", "discrete"] = Field(
        default="holding",
        description="Table: holding (FC3), input (FC4), coil (FC1), discrete (FC2).",
    )
    type: ModbusType = Field(
        default="uint16", description="Register encoding; coil and discrete read bool."
    )
    word_order: Literal["big", "little"] = Field(
        default="big", description="big: high word first (the common case)."
    )
    bit: int | None = Field(
        default=None,
        ge=0,
        le=63,
        description="Read one bit of the register value (0 = least significant): 1.0 or 0.0.",
    )
    byte_order: Literal["big", "little"] = Field(
        default="big", description="Byte order within a register: big as the standard says."
    )


class OpcUaPoint(PointBase):
    """One OPC UA variable."""

    node: str = Field(pattern=r"^(ns=\d+;)?[isgb]=.+$", description='Node id, e.g. "ns=2;s=Tag".')


class Dlt645Point(PointBase):
    """One DL/T 645 data identifier."""

    di: str = Field(
        pattern=r"^[0-9A-Fa-f]{8}$",
        description='Data identifier DI3..DI0 as in the standard, e.g. "00010000".',
    )
    format: str = Field(
        default="XXXXXX.XX",
        pattern=r"^X+(\.X+)?$",
        description="BCD format of the value, e.g. XXXXXX.XX (kWh: 8 digits, 2 decimals, "
        "4 bytes) or XX.XXXX (kW); the reply must hold exactly that many bytes.",
    )
    signed: bool = Field(
        default=False,
        description="Bit 0x80 of the most significant byte (sent last) is the sign: "
        "currents, powers, power factor.",
    )


# --- what a device measures ---------------------------------------------------


class Density(Strict):
    """A liquid fuel's density, with where the figure comes from."""

    value: float = Field(gt=0, le=2, description="Kilograms per litre (diesel is about 0.84).")
    source: str = Field(
        min_length=1,
        description="Where the figure comes from: the supplier's delivery note, a lab report.",
    )


class Energy(Strict):
    """What the device meters, and the point that counts it."""

    carrier: Carrier = Field(description="What the device meters.")
    counter: str | None = Field(
        default=None,
        description="Name of the point holding the cumulative total (always preferred: "
        "it carries the energy of gaps).",
    )
    power: str | None = Field(
        default=None,
        description="Without a counter: the point of power or flow (kW, m3/h, t/h ...) "
        "integrated by the trapezoid rule; the energy of gaps is unknown, not invented.",
    )
    max_rate: float | None = Field(
        default=None,
        gt=0,
        description="Largest plausible advance of the counter per hour, in its unit "
        "(kW for a kWh counter, m3/h for gas): a faster rise is a bad reading, never energy. "
        "With power: the largest plausible power or flow, in the carrier's unit per hour.",
    )
    modulus: float | None = Field(
        default=None,
        gt=0,
        description="Where the counter returns to 0, in its unit as read (a 6-digit kWh "
        "display: 1000000): a drop to near 0 is then a rollover, its energy counted. Without "
        "it an unsigned integer or DL/T 645 register wraps at its range; a float never does.",
    )
    density: Density | None = Field(
        default=None,
        description="For diesel, gasoline, LPG or fuel oil metered in L or m3 (or L/h, m3/h): "
        "the density that turns volume into the kg the factors are per, with its source; "
        "both travel in every interval record.",
    )


class Production(Strict):
    """The point counting output, for carbon intensity (CO2 per unit)."""

    counter: str = Field(description="Name of the point counting units produced.")


class _DeviceBase(Strict):
    name: Name
    profile: str | None = Field(
        default=None, description="Meter profile from the library, e.g. eastron-sdm630."
    )
    poll: Duration = Field(default=10.0, gt=0, description="Polling period.")
    energy: Energy | None = Field(default=None, description="Energy metered by this device.")
    production: Production | None = Field(default=None, description="Output counted here.")
    ct_ratio: float = Field(
        default=1.0,
        gt=0,
        description="Current transformer ratio (e.g. 200 for 1000/5 A): a meter behind "
        "transformers reports secondary values; currents, powers and energies are multiplied.",
    )
    pt_ratio: float = Field(
        default=1.0,
        gt=0,
        description="Voltage transformer ratio (e.g. 100 for 10 kV/100 V): voltages, powers "
        "and energies are multiplied.",
    )
    reverse: bool = Field(
        default=False,
        description="The meter is wired backwards: powers change sign and import and export "
        "counters swap (import_* <-> export_*).",
    )


class ModbusTcpDevice(_DeviceBase):
    """A meter reached over Modbus TCP."""

    modbus_tcp: ModbusTcp
    points: list[ModbusPoint] = Field(default=[], description="Own points; replace the profile's.")


class ModbusRtuDevice(_DeviceBase):
    """A meter on an RS-485 bus speaking Modbus RTU."""

    modbus_rtu: ModbusRtu
    points: list[ModbusPoint] = Field(default=[], description="Own points; replace the profile's.")


class OpcUaDevice(_DeviceBase):
    """Values read from an OPC UA server."""

    opcua: OpcUa
    points: list[OpcUaPoint] = Field(default=[], description="Own points; replace the profile's.")


class Dlt645Device(_DeviceBase):
    """A DL/T 645-2007 electricity meter."""

    dlt645: Dlt645
    points: list[Dlt645Point] = Field(default=[], description="Own points; replace the profile's.")


PROTOCOLS = ("modbus_tcp", "modbus_rtu", "opcua", "dlt645")
# Tags appear in validation error paths; they contain '=' so they can never be
# mistaken for a YAML key when errors are mapped back to positions.
TAG_PREFIX = "protocol="


def _protocol_of(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        present = [p for p in PROTOCOLS if getattr(value, p, None) is not None]
    elif isinstance(value, dict):
        present = [p for p in PROTOCOLS if p in value]
    else:
        return None
    return TAG_PREFIX + present[0] if len(present) == 1 else None


Device = Annotated[
    Annotated[ModbusTcpDevice, Tag(TAG_PREFIX + "modbus_tcp")]
    | Annotated[ModbusRtuDevice, Tag(TAG_PREFIX + "modbus_rtu")]
    | Annotated[OpcUaDevice, Tag(TAG_PREFIX + "opcua")]
    | Annotated[Dlt645Device, Tag(TAG_PREFIX + "dlt645")],
    Discriminator(
        _protocol_of,
        custom_error_type="device_protocol",
        custom_error_message="a device needs exactly one of modbus_tcp, modbus_rtu, opcua, dlt645",
    ),
]


def protocol_of(device: BaseModel) -> str:
    """'modbus_tcp', 'modbus_rtu', 'opcua' or 'dlt645'."""
    tag = _protocol_of(device)
    assert tag is not None  # a validated device has exactly one
    return tag.removeprefix(TAG_PREFIX)


# --- rules (evaluated by agent/rules.py) ---------------------------------------


class ModbusWrite(Strict):
    """Write one coil or register while the alarm is raised (a stack light)."""

    device: str = Field(description="A modbus_tcp or modbus_rtu device.")
    coil: int | None = Field(default=None, ge=0, le=65535, description="Coil address.")
    register_: int | None = Field(
        default=None, alias="register", ge=0, le=65535, description="Holding register address."
    )
    value: bool | int = Field(description="true/false for a coil, a number for a register.")


class OpcUaWrite(Strict):
    """Write one OPC UA variable while the alarm is raised (a PLC flag, a stack light)."""

    device: str = Field(description="An opcua device (its endpoint and login are used).")
    node: str = Field(
        pattern=r"^(ns=\d+;)?[isgb]=.+$", description='Node id, e.g. "ns=2;s=Line1.Alarm".'
    )
    value: bool | int | float = Field(
        description="true/false for a Boolean node, a number for a numeric one; "
        "written in the node's own data type."
    )


class RuleAction(Strict):
    """What to do locally when the alarm is raised: exactly one of the writes."""

    modbus_write: ModbusWrite | None = Field(
        default=None, description="A Modbus coil or holding register."
    )
    opcua_write: OpcUaWrite | None = Field(default=None, description="An OPC UA variable.")


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
    sync: Sync
    emissions: Emissions = Emissions()
    devices: list[Device] = Field(default=[], description="Meters to poll.")
    rules: list[Rule] = Field(default=[], description="Overshoot alarms, evaluated locally.")
    http: Http = Field(default=Http(), description="Local /healthz and /metrics endpoint.")


AnyDevice = ModbusTcpDevice | ModbusRtuDevice | OpcUaDevice | Dlt645Device
AnyPoint = ModbusPoint | OpcUaPoint | Dlt645Point

ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
