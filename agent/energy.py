"""Energy from a cumulative counter: which samples to trust, and what they add.

Trusted samples carry the energy `new - old`, spread over the intervals the
pair spans (agent/intervals.py). A bad value must never become energy, so:

- A sample is trusted only when the next one agrees with it: `a <= s <= c`
  (`a` the last trusted value, `s` the sample judged, `c` the newest). A value
  out of line with its neighbours (a dip to 0, a spike) is a glitch.
- A rise faster than the counter can go (`max_rate`, or half the register's
  range between two polls) is a jump: never counted; if three samples in a
  row confirm the new level it becomes the new baseline.
- A confirmed drop is a rollover (the register wrapped from near its top to
  near 0) or a reset. After a reset the rise of the new, low values is held
  back: if the counter comes back to its old value the low values were bad
  readings and only the true advance is counted; if it keeps counting (three
  rises, or ten minutes) the reset was real and the held rise is placed.
- The first baseline is the first of three agreeing samples.

Energy is applied one sample late, so intervals close one poll after their
end. The state is small and is persisted with the intervals it closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from agent.intervals import ClosedInterval, OpenInterval, close, roll, spread

MAX_INTERVALS = 50_000  # a silence longer than this many shortest intervals is not spread
MAX_CLOCK_WAIT = 86400.0  # the clock going back further starts a new baseline
PROVEN = 3  # rises after a reset that prove it real
DOUBT_LIMIT = 600.0  # seconds after which an unproven reset is taken as real
JUMP_CONFIRM = 3  # samples at an implausible new level before it becomes the baseline
RATE_MARGIN = 1.5  # poll jitter: a rise up to this times max_rate over the span is fine


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float
    value: float


@dataclass(frozen=True, slots=True)
class CounterEvent:
    kind: str  # counter_glitch | counter_jump | counter_reset | counter_rollover | counter_gap
    detail: str  # | clock_backwards


@dataclass(frozen=True, slots=True)
class Counter:
    """What is fixed about one counter: where its intervals fall and how fast it can go."""

    lengths: tuple[float, ...]
    tz: ZoneInfo
    gap_limit: float  # samples further apart than this are a gap
    modulus: float | None = None  # the value at which the register wraps to 0
    max_rate: float | None = None  # largest plausible advance per hour


@dataclass(slots=True)
class ResetDoubt:
    """A drop not yet proven to be a reset: the low run's rise is held back."""

    before: Sample  # the last trusted value before the drop
    low: Sample  # the newest trusted value of the low run
    held: float = 0.0
    rises: int = 0


@dataclass(slots=True)
class CounterState:
    """`last`: the trusted sample energy is spread from; `pending`: the newest sample,
    waiting for the next one to judge it."""

    last: Sample | None = None
    pending: Sample | None = None
    open: dict[float, OpenInterval] = field(default_factory=dict)
    doubt: Sample | None = None  # before the first baseline: the sample before `pending`
    reset: ResetDoubt | None = None
    jump: Sample | None = None  # an implausible new level, and how often it was seen
    jump_seen: int = 0
    suspect: Sample | None = None  # a rise the next value fell from
    behind: bool = False  # waiting for the clock to catch up (not persisted)

    def to_json(self) -> dict:
        def pair(s: Sample | None) -> list[float] | None:
            return [s.ts, s.value] if s else None

        r = self.reset
        return {
            "last": pair(self.last),
            "pending": pair(self.pending),
            "doubt": pair(self.doubt),
            "reset": [pair(r.before), pair(r.low), r.held, r.rises] if r else None,
            "jump": pair(self.jump),
            "jump_seen": self.jump_seen,
            "suspect": pair(self.suspect),
            "open": [
                [length, o.start, o.end, o.quantity, o.measured, o.interpolated]
                for length, o in self.open.items()
            ],
        }

    @classmethod
    def from_json(cls, data: dict) -> CounterState:
        def sample(raw: list[float] | None) -> Sample | None:
            return Sample(*raw) if raw else None

        r = data.get("reset")
        reset = ResetDoubt(Sample(*r[0]), Sample(*r[1]), r[2], r[3]) if r else None
        return cls(
            last=sample(data.get("last")),
            pending=sample(data.get("pending")),
            open={row[0]: OpenInterval(*row[1:]) for row in data.get("open", [])},
            doubt=sample(data.get("doubt")),
            reset=reset,
            jump=sample(data.get("jump")),
            jump_seen=data.get("jump_seen", 0),
            suspect=sample(data.get("suspect")),
        )


@dataclass(frozen=True, slots=True)
class Step:
    """What one sample did: the intervals it closed and what it found."""

    closed: dict[float, list[ClosedInterval]]
    events: list[CounterEvent] = field(default_factory=list)


def _noise(level: float) -> float:
    """How far a value may fall and still be register rounding (float32, scaling)."""
    return max(1e-9, abs(level) * 1e-6)


class _Judge:
    """One call of `advance`: the state, the counter, and what this sample produced."""

    def __init__(self, state: CounterState, counter: Counter) -> None:
        self.state = state
        self.counter = counter
        self.step = Step({length: [] for length in counter.lengths})

    def say(self, kind: str, detail: str) -> None:
        self.step.events.append(CounterEvent(kind, detail))

    def place(self, to: Sample, delta: float | None, interpolated: bool = False) -> None:
        """Spread `delta` over the time from the last trusted sample to `to`, and trust `to`."""
        state, counter = self.state, self.counter
        last = state.last
        for length in counter.lengths:
            closed = self.step.closed[length]
            if last is None:
                roll(state.open, length, to.ts, counter.tz, closed)
            else:
                gap = interpolated or to.ts - last.ts > counter.gap_limit
                spread(state.open, length, last.ts, to.ts, delta, gap, counter.tz, closed)
        state.last = to

    def trust(self, s: Sample, rise: float) -> None:
        """`s` is good: count its rise, or hold it back while a reset is in doubt."""
        state = self.state
        r = state.reset
        if r is None:
            self.place(s, rise)
            return
        if s.value >= r.before.value - _noise(r.before.value):
            self.say(
                "counter_glitch",
                f"back at {s.value:g} after values below {r.before.value:g}: "
                "they were bad readings, not a reset; only the true advance is counted",
            )
            state.reset = None
            self.place(s, s.value - r.before.value, interpolated=True)
            return
        r.held += rise
        r.rises += rise > _noise(s.value)
        r.low = s
        if r.rises >= PROVEN or s.ts - r.before.ts > DOUBT_LIMIT:  # counting on: a real reset
            state.reset = None
            self.place(s, r.held, interpolated=True)

    def implausible(self, a: Sample, s: Sample) -> bool:
        """A rise no meter could make in that time: a bad value, never energy."""
        counter, rise, span = self.counter, s.value - a.value, s.ts - a.ts
        limit = counter.max_rate
        if limit is not None and rise > limit * span / 3600 * RATE_MARGIN + _noise(s.value):
            return True
        modulus = counter.modulus
        return bool(modulus and span <= counter.gap_limit and rise > modulus / 2)

    def new_timeline(self, at: Sample, kind: str, why: str) -> None:
        """Close what is open and start over from `at`, which must then be confirmed."""
        state = self.state
        for length, current in state.open.items():
            self.step.closed[length].append(close(current))
        state.open, state.last, state.doubt, state.reset = {}, None, None, None
        state.jump, state.suspect = None, None
        state.pending = at
        self.say(kind, why)


def advance(state: CounterState, sample: Sample, counter: Counter) -> Step:
    """Feed one good counter sample; returns the intervals it closed and what it found."""
    judge = _Judge(state, counter)
    s, c = state.pending, sample
    if s is not None and c.ts <= s.ts:
        _clock_went_back(judge, c)
        return judge.step
    state.pending, state.behind = c, False
    if s is None:
        return judge.step
    if state.last is None:
        _choose_baseline(judge, s, c)
        return judge.step
    a = state.reset.low if state.reset else state.last
    if (s.ts - a.ts) / min(counter.lengths) > MAX_INTERVALS:
        judge.new_timeline(
            s,
            "counter_gap",
            f"silent for {(s.ts - a.ts) / 86400:.0f} days: the counter advanced "
            f"{s.value - a.value:g} in that time, not placed in intervals",
        )
        state.pending = c
        return judge.step
    _judge(judge, a, s, c)
    return judge.step


def _judge(judge: _Judge, a: Sample, s: Sample, c: Sample) -> None:
    """Decide what `s` is, now that `c` came after it (`a`: the value counting goes on from)."""
    state = judge.state
    if state.suspect is not None:
        resolved = _resolve_suspect(judge, a, s, c)
        if resolved is None:
            return
        a = resolved
    if s.value >= a.value - _noise(a.value):  # a rise, or no change
        back = state.reset is not None and s.value >= state.reset.before.value
        if judge.implausible(state.reset.before if back and state.reset else a, s):
            _jump(judge, s)
        elif c.value < s.value - _noise(s.value) and s.value > a.value + _noise(a.value):
            state.suspect = s  # a rise the next value fell from: `s` or `c` is bad
        else:
            state.jump, state.jump_seen = None, 0
            # a hair below `a` is rounding: time goes on, the value stays at `a`
            judge.trust(Sample(s.ts, max(s.value, a.value)), max(0.0, s.value - a.value))
        return
    _drop(judge, a, s, c)


def _resolve_suspect(judge: _Judge, a: Sample, s: Sample, c: Sample) -> Sample | None:
    """The rise `p` that `s` fell from: one more sample tells which of them was bad.

    Returns the value judging goes on from, or None when `s` needs no more judging.
    """
    state = judge.state
    p = state.suspect
    assert p is not None
    state.suspect = None
    if c.value >= p.value - _noise(p.value):  # back up at `p`: it was good, `s` dipped
        judge.trust(p, p.value - a.value)
        judge.say("counter_glitch", f"{p.value:g} {s.value:g} {c.value:g}: dip dropped")
        return None
    if c.value >= a.value - _noise(a.value):  # on with the values before `p`: it was a spike
        judge.say("counter_glitch", f"{a.value:g} {p.value:g} {s.value:g}: spike dropped")
        return a
    judge.trust(p, p.value - a.value)  # everything after `p` stays low: a drop after it
    return state.reset.low if state.reset else p


def _drop(judge: _Judge, a: Sample, s: Sample, c: Sample) -> None:
    """`s` fell below `a`: a dip, a rollover, or a reset (held in doubt)."""
    state, counter = judge.state, judge.counter
    r = state.reset
    if r is not None and s.value >= r.before.value - _noise(r.before.value) <= c.value:
        judge.trust(s, 0.0)  # back to the level before the doubt: see _Judge.trust
    elif c.value >= a.value - _noise(a.value):
        judge.say("counter_glitch", f"{a.value:g} {s.value:g} {c.value:g}: dip dropped")
    elif c.value < s.value - _noise(s.value):
        pass  # still falling: wait for the values to settle
    elif _rolled_over(counter, a, s):
        assert counter.modulus is not None
        judge.say("counter_rollover", f"{a.value:g} -> {s.value:g} past {counter.modulus:g}")
        judge.trust(s, s.value + counter.modulus - a.value)
    elif state.reset is None:
        assert state.last is not None
        judge.say("counter_reset", f"{a.value:g} -> {s.value:g}")
        state.reset = ResetDoubt(before=state.last, low=s)
    else:  # fell again during a doubt: the new low is where the run continues from
        state.reset.low = s


def _rolled_over(counter: Counter, a: Sample, s: Sample) -> bool:
    """A drop from near the top of the register's range to near 0."""
    modulus = counter.modulus
    if not modulus or not 0.9 * modulus <= a.value < modulus or s.value > 0.1 * modulus:
        return False  # (a value at or past the modulus is not the register's: no wrap)
    rate = counter.max_rate
    wrapped = s.value + modulus - a.value
    return rate is None or wrapped <= rate * (s.ts - a.ts) / 3600 * RATE_MARGIN


def _jump(judge: _Judge, s: Sample) -> None:
    """An implausible rise: dropped, unless the counter stays at the new level."""
    state = judge.state
    same_level = state.jump is not None and s.value >= state.jump.value - _noise(s.value)
    state.jump_seen = state.jump_seen + 1 if same_level else 1
    if state.jump_seen == 1:
        assert state.last is not None
        judge.say("counter_jump", f"{state.last.value:g} -> {s.value:g}: too fast, not counted")
    state.jump = s
    if state.jump_seen >= JUMP_CONFIRM:  # the meter reads this now: a new baseline, in doubt
        before = state.reset.before if state.reset else state.last
        assert before is not None
        state.jump, state.jump_seen = None, 0
        judge.say("counter_reset", f"new level {s.value:g} confirmed; counting from it")
        judge.place(s, None)
        # if the old level comes back, the new one was bad values (see _Judge.trust)
        state.reset = ResetDoubt(before=before, low=s)


def _choose_baseline(judge: _Judge, s: Sample, c: Sample) -> None:
    """The first trusted value: the first of three samples that agree (d <= s <= c).

    With `max_rate` set, both steps must also be plausible, so a bad first value
    (a 0 from a gateway that has not read its meter yet) is never the baseline.
    """
    state = judge.state
    d, state.doubt = state.doubt, s
    if d is None or s.value < d.value - _noise(d.value) or c.value < s.value - _noise(s.value):
        return
    if judge.implausible(d, s) or judge.implausible(s, c):
        return
    state.doubt = None
    judge.place(d, None)
    judge.place(Sample(s.ts, max(s.value, d.value)), max(0.0, s.value - d.value))


def _clock_went_back(judge: _Judge, c: Sample) -> None:
    """A sample not newer than the pending one: a repeat, or the system clock stepped back."""
    state = judge.state
    last, s = state.last, state.pending
    assert s is not None
    if s.ts - c.ts <= 1.0:
        return  # the same poll twice, or jitter
    if last is None or c.ts > last.ts:  # only the pending sample was ahead: replace it
        judge.say("clock_backwards", f"clock went back {s.ts - c.ts:.0f}s; one sample dropped")
        state.pending = c
    elif last.ts - c.ts > MAX_CLOCK_WAIT:
        judge.new_timeline(
            c,
            "clock_backwards",
            f"clock went back {(last.ts - c.ts) / 3600:.0f}h; counting restarts from here, "
            f"the advance since {last.value:g} is not placed in intervals",
        )
    elif not state.behind:  # wait for the clock to pass the last trusted sample
        state.behind = True
        judge.say(
            "clock_backwards",
            f"clock went back {(last.ts - c.ts) / 60:.0f} min; metering resumes when it "
            "passes the last reading (the counter keeps the energy)",
        )


def integrate(state: CounterState, sample: Sample, counter: Counter) -> Step:
    """Energy from a rate (power in kW, flow in m3/h), for a device without a counter.

    Consecutive good samples add the trapezoid between them, spread over the
    intervals in proportion to time. A negative rate counts as 0 (consumption
    only). Across a gap (samples further apart than `counter.gap_limit`) the
    energy is unknown: it is not invented, the intervals wholly inside the gap
    are not reported and the ones it cuts close with the coverage they had. A
    rate above `max_rate` is refused with an event, like a counter's jump.
    `state.last` is the previous sample; the state is persisted like a counter's.
    """
    step = Step({length: [] for length in counter.lengths})
    last = state.last
    if last is not None and sample.ts <= last.ts:
        return step  # the same sample again, or the clock went back: wait for later ones
    if counter.max_rate is not None and sample.value > counter.max_rate * RATE_MARGIN:
        detail = f"rate {sample.value:g} above max_rate {counter.max_rate:g}: not integrated"
        step.events.append(CounterEvent("rate_implausible", detail))
        return step
    now = Sample(sample.ts, max(0.0, sample.value))
    state.last = now
    if last is None:
        return step
    span = now.ts - last.ts
    if span > counter.gap_limit:
        for length in counter.lengths:
            current = state.open.get(length)
            if current is not None and current.end <= now.ts:
                step.closed[length].append(close(current))
                del state.open[length]
        return step
    delta = (last.value + now.value) / 2.0 * span / 3600.0
    for length in counter.lengths:
        spread(state.open, length, last.ts, now.ts, delta, False, counter.tz, step.closed[length])
    return step
