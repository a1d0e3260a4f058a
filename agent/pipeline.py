"""The computation path, read top to bottom:

    readings -> primary side (wiring) -> counter sample -> energy per interval
             -> kWh, tce, CO2 -> day/month tallies, block demand -> rules -> what to commit

`ingest` is synchronous and does no I/O: it returns a `Commit` that the daemon
hands to the buffer, so everything one poll produced is written at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from agent import demand, intensity, rules
from agent.carbon import interval_record
from agent.demand import TALLY_KEY, Tally
from agent.energy import Counter, CounterState, Sample, Step, advance, integrate
from agent.intensity import PRODUCTION, Intensity, add_production
from agent.intervals import DAY, ClosedInterval
from agent.latest import Latest, Layouts, remember
from agent.rules import RULE_KEY, SITE, Action, Limit, RuleState
from agent.statistics import Statistics
from agent.wiring import Wiring, factor
from cloud_sync.registry import kind_of
from config.base import Density, DeviceBase
from config.carriers import conversion, needs_density, rate_conversion, reported_unit
from config.factors import FactorSet, load_factor_set, province_for
from config.models import Config, Rule
from domain.reading import Reading
from domain.records import Commit, EventRow, IntervalRecord, IntervalRow
from drivers.registry import spec_of

log = logging.getLogger(__name__)

GAP_POLLS = 2.5  # a pair of samples further apart than this many poll periods is a gap
# A reading stamped before this is from a PC whose clock is not set yet (no RTC battery,
# no NTP so far): its time cannot place energy in intervals.
CLOCK_FLOOR = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class Meter:
    """What the pipeline needs to know about one device's energy counter."""

    device: str
    counter: str
    carrier: str
    unit: str
    spec: Counter
    rate: float | None = None  # a power or flow point: to the carrier's unit per hour
    density: Density | None = None  # a liquid fuel metered by volume (energy.density)
    key: str = field(init=False)  # device/counter: its state's key, made once, not per poll

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.device}/{self.counter}")


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _ts(reading: Reading) -> float:
    return reading.ts


def _end_of(record: IntervalRecord) -> float:
    return datetime.fromisoformat(record.end).timestamp()


class _Closed(NamedTuple):
    """A closed interval's record on its way to the commit (length and start in seconds)."""

    length: float
    start: float
    record: IntervalRecord


def _with_demand(closed: _Closed, tally: Tally, tz: ZoneInfo) -> _Closed:
    """A 15-minute electricity record with its block demand and the day's and month's
    largest so far."""
    record = replace(
        closed.record,
        demand_kw=round(closed.record.quantity * 3600.0 / demand.BLOCK, 6),
        demand_max_day_kw=_rounded(tally.max_demand("day", closed.start, tz)),
        demand_max_month_kw=_rounded(tally.max_demand("month", closed.start, tz)),
    )
    return closed._replace(record=record)


def _meter(
    device: DeviceBase,
    counter: str,
    carrier: str,
    max_rate: float | None,
    lengths: tuple[float, ...],
    tz: ZoneInfo,
    modulus: float | None = None,
    density: Density | None = None,
) -> Meter:
    """`modulus`: the configured rollover (energy.modulus), else the register's range."""
    point = next(p for p in device.points if p.name == counter)
    modulus = modulus or spec_of(device).modulus(point)  # the register's range
    if modulus is not None:  # the register wraps on the secondary side
        modulus *= factor(point.unit, device.ct_ratio, device.pt_ratio)
    spec = Counter(lengths, tz, GAP_POLLS * device.poll, modulus, max_rate)
    used = density if needs_density(carrier, point.unit) else None
    return Meter(device.name, point.name, carrier, point.unit, spec, density=used)


def meters_of(
    devices: list[DeviceBase], lengths: tuple[float, ...], tz: ZoneInfo
) -> dict[str, Meter]:
    meters = {}
    for d in devices:
        energy = d.energy
        if energy is None:
            continue
        if energy.counter is not None:
            meters[d.name] = _meter(
                d, energy.counter, energy.carrier, energy.max_rate, lengths, tz, energy.modulus,
                energy.density,
            )  # fmt: skip
        elif energy.power is not None:  # integrated: the trapezoid between samples
            point = next(p for p in d.points if p.name == energy.power)
            density = energy.density.value if energy.density else None
            rate = rate_conversion(energy.carrier, point.unit, density)
            assert rate is not None  # config checks refuse other units
            spec = Counter(lengths, tz, GAP_POLLS * d.poll, None, energy.max_rate)
            unit = reported_unit(energy.carrier)
            used = energy.density if needs_density(energy.carrier, point.unit) else None
            meters[d.name] = Meter(d.name, point.name, energy.carrier, unit, spec, rate, used)
    return meters


def watched_points(config: Config) -> dict[str, frozenset[str]]:
    """Device -> the points whose per-interval statistics some destination sends."""
    devices = {d.name: d for d in config.devices}
    watched: dict[str, set[str]] = {}
    for entry in config.destinations:
        kind = kind_of(entry)
        if kind.statistics is not None:
            for device, point in kind.statistics(kind.settings_of(entry), devices):
                watched.setdefault(device, set()).add(point)
    return {device: frozenset(points) for device, points in watched.items()}


def producers_of(
    devices: list[DeviceBase], lengths: tuple[float, ...], tz: ZoneInfo
) -> dict[str, Meter]:
    """The production counters: counted like energy (rollover, resets, glitches)."""
    return {
        d.name: _meter(d, d.production.counter, PRODUCTION, None, lengths, tz)
        for d in devices
        if d.production is not None
    }


class Pipeline:
    def __init__(
        self,
        config: Config,
        factors: FactorSet,
        province: str,
        states: dict[str, dict],
    ) -> None:
        self.tz = ZoneInfo(config.gateway.timezone)
        self.lengths = tuple(sorted(config.emissions.intervals))
        self.factors = factors.overridden(config.emissions.overrides)
        self.province = province
        self.keep_raw = config.buffer.raw_retention > 0
        self.meters = meters_of(config.devices, self.lengths, self.tz)
        self.producers = producers_of(config.devices, self.lengths, self.tz)
        self.intensity = Intensity.from_json(states.get(intensity.KEY, {}))
        self._intensity_changed = False
        self.wiring = {device.name: Wiring.of(device) for device in config.devices}
        self._clock_unset = False
        self.states: dict[str, CounterState] = {}
        named = {device.name for device in config.devices} | {SITE}
        self.tallies = {  # a device no longer configured no longer counts for the site
            k.removeprefix(TALLY_KEY): Tally.from_json(v)
            for k, v in states.items()
            if k.startswith(TALLY_KEY) and k.removeprefix(TALLY_KEY) in named
        }
        self.rules: dict[str | None, list[tuple[Rule, Limit]]] = {}  # by device; None: site
        for rule in config.rules:
            self.rules.setdefault(rule.device, []).append((rule, Limit.of(rule)))
        self._site_judged = 0.0  # reading time site rules were last judged at
        self.rule_states = {
            rule.name: RuleState.from_json(states.get(RULE_KEY + rule.name, {}))
            for rule in config.rules
        }
        # asked for by rule transitions; the daemon runs them. A rule raised before a
        # restart asks again: the write may not have happened before the stop.
        self.actions: list[Action] = [
            action
            for rule in config.rules
            if self.rule_states[rule.name].raised
            and (action := rules.action_for(rule, "raised")) is not None
        ]
        for key, data in states.items():
            if key.startswith("#"):  # tallies and rules, read above
                continue
            state = CounterState.from_json(data)
            # interval lengths no longer configured are dropped; new ones start at the next sample
            state.open = {k: v for k, v in state.open.items() if k in self.lengths}
            self.states[key] = state
        self.latest: dict[str, Latest] = {}  # device -> its points' latest readings
        self._layouts = Layouts()
        self.statistics = Statistics(watched_points(config), self.lengths, self.tz, states)

    def ingest(self, device: str, readings: list[Reading]) -> Commit:
        """One poll's readings in, everything that must be persisted out."""
        work = Commit()
        readings = self.wiring[device].apply(readings)
        remember(self.latest, self._layouts, device, readings)
        self.statistics.add(device, readings)
        if self.keep_raw:
            work.samples = [
                (r.device, r.point, r.ts, r.value, r.unit, r.quality.value) for r in readings
            ]
        for meter in (self.meters.get(device), self.producers.get(device)):
            if meter is None:
                continue
            # one reading per poll, or every change a subscription delivered, oldest first
            counter = meter.counter
            found = [r for r in readings if r.point == counter]
            if len(found) > 1:
                found.sort(key=_ts)
            for reading in found:
                if reading.good:
                    self._count(meter, reading, work)
        if self._intensity_changed:
            self._intensity(max(r.ts for r in readings), work)
            self._intensity_changed = False
        if self.rules and readings:
            self._judge(device, max(r.ts for r in readings), work)
        return work

    def _judge(self, device: str, ts: float, work: Commit) -> None:
        """The rules watching this device or the site, on this poll's figures."""
        if ts < CLOCK_FLOOR:
            return
        # site rules at most once a second: with 200 meters they would otherwise sum
        # every device's figures 200 times a second
        site = abs(ts - self._site_judged) >= 1.0
        if site:
            self._site_judged = ts
        watching = self.rules.get(device, [])
        for rule, limit in [*watching, *self.rules.get(None, [])] if site else watching:
            value = rules.figure(rule, ts, self.latest, self.tallies, self.tz)
            if value is None:
                continue
            state = self.rule_states[rule.name]
            kind, changed = rules.judge(limit, state, ts, value)
            if kind is not None:
                work.events.append(rules.transition(rule, limit, kind, ts, value))
                action = rules.action_for(rule, kind)
                if action is not None:
                    self.actions.append(action)
            if changed:
                work.counters[RULE_KEY + rule.name] = state.to_json()

    def take_actions(self) -> list[Action]:
        """The actions asked for since the last call (the daemon starts them)."""
        actions, self.actions = self.actions, []
        return actions

    def _count(self, meter: Meter, reading: Reading, work: Commit) -> None:
        """One counter sample through energy and carbon, into `work`."""
        assert reading.value is not None
        if reading.ts < CLOCK_FLOOR:
            if not self._clock_unset:
                log.error("the system clock is not set (%s): energy waits for it", reading.ts)
            self._clock_unset = True
            return
        self._clock_unset = False
        state = self.states.get(meter.key)
        if state is None:  # not setdefault: that builds a CounterState every poll (0.9 us)
            state = self.states[meter.key] = CounterState()
        if meter.rate is not None:
            first = state.last is None
            step = integrate(state, Sample(reading.ts, reading.value * meter.rate), meter.spec)
        else:
            first = state.pending is None
            step = advance(state, Sample(reading.ts, reading.value), meter.spec)
        if meter.carrier == PRODUCTION:
            for length, closed in step.closed.items():
                for interval in closed:
                    record = intensity.production_record(
                        meter.device, meter.unit, interval, self.tz
                    )
                    add_production(self.intensity, length, interval.start, interval.end, record)
                    self._intensity_changed = True
            self._persist(meter, state, first, step, reading.ts, work)
            return
        records = [
            _Closed(length, interval.start, self._record(meter, length, interval))
            for length, closed in step.closed.items()
            for interval in closed
        ]
        if records:
            records = self._tally(meter, records, work)
        if self.producers:
            for c in records:
                intensity.add_energy(self.intensity, c.length, c.start, c.record)
                self._intensity_changed = True
        work.intervals += [
            IntervalRow(meter.device, c.start, c.length, c.record.to_json()) for c in records
        ]
        self._persist(meter, state, first, step, reading.ts, work)

    def _record(self, meter: Meter, length: float, interval: ClosedInterval) -> IntervalRecord:
        record = interval_record(
            meter.device, meter.carrier, meter.unit, interval, self.factors, self.province,
            self.tz, meter.density,
        )  # fmt: skip
        stats = self.statistics.take(meter.device, length, interval.start)
        return record if stats is None else replace(record, stats=stats)

    def _persist(
        self, meter: Meter, state: CounterState, first: bool, step: Step, ts: float, work: Commit
    ) -> None:
        """The counter's events, and its state when it must survive a crash."""
        for event in step.events:
            log.warning("%s %s: %s: %s", meter.device, meter.counter, event.kind, event.detail)
            detail = f"{meter.counter}: {event.detail}"
            work.events.append(EventRow(ts, meter.device, event.kind, "warning", detail))
        closed = any(step.closed.values())
        if first or step.events or closed:
            work.counters[meter.key] = state.to_json()
        if closed:  # the device's statistics windows are saved with its counter
            work.counters |= self.statistics.saved(meter.device)

    def _intensity(self, now: float, work: Commit) -> None:
        """Production records whose site CO2 is now known, into `work` (see agent/intensity)."""

        def ready(length: float, end: float) -> bool:
            for meter in self.meters.values():
                state = self.states.get(meter.key)
                current = state.open.get(length) if state else None
                if current is not None and current.start < end - 1e-6:
                    return False
            return True

        for item in intensity.release(self.intensity, ready, now, self.lengths[0], self.tz):
            row = IntervalRow(item.record.device, item.start, item.length, item.record.to_json())
            work.intervals.append(row)
        produced = {}
        for length in self.lengths:
            starts = [
                s.open[length].start if s is not None and length in s.open else None
                for s in (self.states.get(m.key) for m in self.producers.values())
            ]
            if starts and None not in starts:
                produced[length] = min(s for s in starts if s is not None)
        intensity.forget(self.intensity, produced, now)
        work.counters[intensity.KEY] = self.intensity.to_json()

    def _tally(self, meter: Meter, records: list[_Closed], work: Commit) -> list[_Closed]:
        """Shortest intervals into the day/month tallies and block demand; a 15-minute
        electricity record gets its block demand and the day's and month's largest."""
        tally = self.tallies.setdefault(meter.device, Tally())
        for row in sorted(records, key=lambda r: r.start):
            if row.length != self.lengths[0]:
                continue
            end = _end_of(row.record) if row.length == DAY else row.start + row.length
            block = demand.add(tally, row.record, row.start, end, self.tz)
            if block is not None:
                site = self.tallies.setdefault(SITE, Tally())
                devices = [t for k, t in self.tallies.items() if k != SITE]
                total = demand.site_block(devices, tally.last_block)
                demand.note_max(site, total, tally.last_block, self.tz)
                work.counters[TALLY_KEY + SITE] = site.to_json()
        work.counters[TALLY_KEY + meter.device] = tally.to_json()
        if meter.carrier != "electricity":
            return records
        return [_with_demand(r, tally, self.tz) if r.length == demand.BLOCK else r for r in records]

    def flush(self) -> Commit:
        """Every counter's state, for a clean stop: the interval in progress resumes after it."""
        counters = {key: state.to_json() for key, state in self.states.items()}
        counters |= {TALLY_KEY + key: tally.to_json() for key, tally in self.tallies.items()}
        counters |= {RULE_KEY + k: state.to_json() for k, state in self.rule_states.items()}
        if self.producers:
            counters[intensity.KEY] = self.intensity.to_json()
        counters |= self.statistics.to_json()
        return Commit(counters=counters)

    def open_energy(self, device: str) -> float | None:
        """Energy of the shortest interval in progress, in the carrier's unit (live table)."""
        meter = self.meters.get(device)
        state = self.states.get(meter.key) if meter else None
        current = state.open.get(self.lengths[0]) if state else None
        if meter is None or current is None:
            return None
        density = meter.density.value if meter.density else None
        return current.quantity * (conversion(meter.carrier, meter.unit, density) or 1.0)


def derive(config: Config, states: dict[str, dict]) -> Pipeline:
    """Everything computed from the config, built in one place for start and reload.

    `states` are the counters' saved states (device/counter -> JSON); a reload
    passes what the running pipeline would persist (counters of the devices that
    remain, rule states, tallies), so a reload neither re-raises nor loses them.
    """
    factors = load_factor_set(config.emissions.factor_set)
    province = config.emissions.grid or province_for(config.gateway.region_code)
    assert province is not None  # config checks refuse a region without a factor
    grid = factors.grid(province)
    log.info(
        "factor set %s: grid factor %s %g %s (%s)",
        factors.name, province, grid.value, grid.unit, grid.verification,
    )  # fmt: skip
    return Pipeline(config, factors, province, states)
