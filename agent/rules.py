"""Overshoot rules: a limit on one quantity, raised once and cleared once.

A rule watches one figure of a device or of the whole site (FIGURES: one
function per name of config/quantities.py) or a point of its device, is
raised when the figure has been past its limit for `for` seconds on end, and
is cleared once the figure is back past the clear level (hysteresis). Its
state is a few numbers, persisted in the buffer's `counters` table under
`#rule/<name>` in the same transaction as the event that changed it: after a
crash either both are on disk or neither, so a restart never raises twice.

The judging (`judge`) is a pure function of the state, the time and the
value; `figure` reads the value from the pipeline's plain data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from agent.demand import Tally, demand_now, local_day
from config.models import Rule
from config.quantities import RULE_QUANTITIES
from config.units import format_duration
from domain.reading import Reading
from domain.records import EventRow
from drivers.spec import WriteModel

log = logging.getLogger(__name__)

RULE_KEY = "#rule/"  # '#' never starts a device name, so never a counter's key
SITE = "#site"  # the site's tally key suffix (largest demand of the day and month)
HYSTERESIS = 0.02  # default clear level: this share of the limit back inside it

_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


@dataclass(frozen=True, slots=True)
class Limit:
    """A rule's levels: `sign` +1 for above, -1 for below; `hold` the `for` seconds."""

    sign: int
    level: float
    clear: float
    hold: float

    @classmethod
    def of(cls, rule: Rule) -> Limit:
        if rule.above is not None:
            default = rule.above - HYSTERESIS * abs(rule.above)
            clear = rule.clear_below if rule.clear_below is not None else default
            return cls(1, rule.above, clear, rule.for_)
        assert rule.below is not None  # config checks ask for exactly one
        default = rule.below + HYSTERESIS * abs(rule.below)
        clear = rule.clear_above if rule.clear_above is not None else default
        return cls(-1, rule.below, clear, rule.for_)

    def beyond(self, value: float) -> bool:
        return (value - self.level) * self.sign > 0

    def back(self, value: float) -> bool:
        return (value - self.clear) * self.sign < 0


@dataclass(slots=True)
class RuleState:
    raised: bool = False
    since: float | None = None  # while not raised: when the figure went past the limit
    raised_at: float | None = None

    def to_json(self) -> dict:
        return {"raised": self.raised, "since": self.since, "raised_at": self.raised_at}

    @classmethod
    def from_json(cls, data: dict) -> RuleState:
        return cls(bool(data.get("raised")), data.get("since"), data.get("raised_at"))


def judge(limit: Limit, state: RuleState, ts: float, value: float) -> tuple[str | None, bool]:
    """Move `state` on by one value: ("raised" | "cleared" | None, whether it changed)."""
    if state.raised:
        if limit.back(value):
            state.raised, state.raised_at = False, None
            return "cleared", True
        return None, False
    if not limit.beyond(value):
        changed = state.since is not None
        state.since = None
        return None, changed
    changed = state.since is None
    if state.since is None or ts < state.since:  # a clock set back restarts the wait
        state.since, changed = ts, True
    if ts - state.since >= limit.hold:
        state.raised, state.since, state.raised_at = True, None, ts
        return "raised", True
    return None, changed


@dataclass(frozen=True, slots=True)
class Action:
    """A write a transition asks for: the rule's write model (its protocol's own, e.g. a
    Modbus coil or an OPC UA node) and the value to write now; the daemon runs it off
    the poll path, the device's driver does the writing."""

    rule: str
    device: str
    write: WriteModel
    value: bool | int | float


@dataclass(frozen=True, slots=True)
class _View:
    """What a figure is read from: the pipeline's plain data, for one rule at `ts`."""

    rule: Rule
    ts: float
    latest: Mapping[str, Mapping[str, Reading]]
    tallies: dict[str, Tally]
    tz: ZoneInfo

    @property
    def mine(self) -> Tally | None:
        """The rule's device's tally (None for the site, or before its first interval)."""
        return self.tallies.get(self.rule.device) if self.rule.device is not None else None

    @property
    def scope(self) -> list[Tally]:
        """The device's tally, or for the site every device's."""
        if self.rule.device is not None:
            return [] if self.mine is None else [self.mine]
        return [t for k, t in self.tallies.items() if k != SITE]


def _power_kw(v: _View) -> float | None:
    if v.rule.device is not None:  # a device's power_kw is its point
        return _point(v.latest, v.rule.device, "power_kw")
    values = [r.value for d in v.latest.values() if (r := d.get("power_kw")) and r.good]
    return sum(x for x in values if x is not None) if values else None


def _demand_15m_kw(v: _View) -> float | None:
    return demand_now(v.scope, v.ts, v.tz)


def _demand_max(period: str) -> Callable[[_View], float | None]:
    def largest(v: _View) -> float | None:
        source = v.mine if v.rule.device is not None else v.tallies.get(SITE)
        return source.max_demand(period, v.ts, v.tz) if source is not None else None

    return largest


def _energy_interval(v: _View) -> float | None:
    return v.mine.quantity if v.mine is not None else None


def _co2_kg_h(v: _View) -> float | None:
    rates = [t.co2_rate for t in v.scope if t.co2_rate is not None]
    return sum(rates) if rates else None


def _total(what: str, period: str) -> Callable[[_View], float | None]:
    def total(v: _View) -> float | None:
        day = local_day(v.ts, v.tz)
        return sum(t.total(what, period, day) for t in v.scope)

    return total


# One function per name of config/quantities.py (a test holds the keys to its table).
FIGURES: dict[str, Callable[[_View], float | None]] = {
    "power_kw": _power_kw,
    "demand_15m_kw": _demand_15m_kw,
    "demand_max_today_kw": _demand_max("day"),
    "demand_max_month_kw": _demand_max("month"),
    "energy_interval": _energy_interval,
    "co2_kg_h": _co2_kg_h,
    "co2_kg_today": _total("co2", "day"),
    "co2_kg_month": _total("co2", "month"),
    "tce_kg_today": _total("tce", "day"),
    "tce_kg_month": _total("tce", "month"),
}


def _point(latest: Mapping[str, Mapping[str, Reading]], device: str, name: str) -> float | None:
    reading = latest.get(device, {}).get(name)
    return reading.value if reading is not None and reading.good else None


def figure(
    rule: Rule,
    ts: float,
    latest: Mapping[str, Mapping[str, Reading]],
    tallies: dict[str, Tally],
    tz: ZoneInfo,
) -> float | None:
    """The value a rule watches now, or None when it is not known (device offline...).
    A name FIGURES does not have is a point of the rule's device; the site has no points
    (config checks refuse such a rule), so it is never known there."""
    compute = FIGURES.get(rule.quantity)
    if compute is not None:
        return compute(_View(rule, ts, latest, tallies, tz))
    if rule.device is None:
        return None
    return _point(latest, rule.device, rule.quantity)


def transition(rule: Rule, limit: Limit, kind: str, ts: float, value: float) -> EventRow:
    """The event of a raise or clear, logged at the rule's severity (a clear at INFO)."""
    spec = RULE_QUANTITIES.get(rule.quantity)
    unit = spec.unit if spec is not None else ""
    whose = f"of {rule.device}" if rule.device else "of the site"
    shown = f"{rule.quantity} {whose} {value:g}{' ' + unit if unit else ''}"
    side = "above" if limit.sign > 0 else "below"
    if kind == "raised":
        held = f" for {format_duration(limit.hold)}" if limit.hold else ""
        message = f"rule {rule.name}: {shown} {side} {limit.level:g}{held}"
        severity = rule.severity
    else:
        back = "below" if limit.sign > 0 else "above"
        message = f"rule {rule.name} cleared: {shown} back {back} {limit.clear:g}"
        severity = "info"
    log.log(_LEVELS[severity], "%s", message)
    return EventRow(ts, rule.device, f"alarm_{kind}", severity, message)


def action_for(rule: Rule, kind: str) -> Action | None:
    """Raised: write the configured value; cleared: the opposite of a true/false (a coil,
    a Boolean node) or 0 for a number (a register, a numeric node)."""
    write = rule.action.write if rule.action is not None else None
    if write is None:
        return None  # no action, or not exactly one write (config checks refuse that)
    value = write.value
    if kind == "cleared":
        value = (not value) if isinstance(value, bool) else 0
    return Action(rule.name, write.device, write, value)
