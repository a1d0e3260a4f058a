"""Energy from a cumulative counter: which samples to trust, and what they add.

Every pair of trusted samples carries the energy `new - old`, spread over the
intervals it spans (agent/intervals.py). Each sample is judged by the one
after it, so one bad value never adds energy: a value out of line with both
neighbours (a dip to 0, a spike) is a glitch and is dropped; a drop the next
sample confirms is a reset, or a rollover when the counter wrapped at its
register's range. After a reset the old value is remembered for a while: if
the counter comes back to it, the "reset" was a run of bad values and counting
resumes from the old value. The state needed to go on is small and is
persisted with the intervals it closes, so a restart continues from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from agent.intervals import ClosedInterval, OpenInterval, close, roll, spread

MAX_SPREAD = 31 * 86400.0  # a longer silence is not spread over intervals (see `advance`)
MAX_CLOCK_STEP = 3600.0  # the clock going back further starts a new baseline
PROVEN = 3  # increases after a reset that prove it real


@dataclass(frozen=True, slots=True)
class Sample:
    ts: float
    value: float


@dataclass(frozen=True, slots=True)
class CounterEvent:
    kind: str  # counter_glitch | counter_reset | counter_rollover | counter_gap | clock_backwards
    detail: str


@dataclass(frozen=True, slots=True)
class Counter:
    """What is fixed about one counter: where its intervals fall and how it wraps."""

    lengths: tuple[float, ...]
    tz: ZoneInfo
    gap_limit: float  # samples further apart than this are a gap
    modulus: float | None = None  # the value at which the register wraps to 0


@dataclass(slots=True)
class CounterState:
    """`last`: the trusted sample energy is counted from; `pending`: the newest
    sample, waiting for the next one to confirm it."""

    last: Sample | None = None
    pending: Sample | None = None
    open: dict[float, OpenInterval] = field(default_factory=dict)
    doubt: Sample | None = None  # before the first baseline: a value the next one contradicted
    before_reset: Sample | None = None  # the trusted value before a reset not yet proven
    since_reset: float = 0.0  # energy counted since that reset
    proven: int = 0  # increases seen since that reset

    def to_json(self) -> dict:
        def pair(s: Sample | None) -> list[float] | None:
            return [s.ts, s.value] if s else None

        return {
            "last": pair(self.last),
            "pending": pair(self.pending),
            "doubt": pair(self.doubt),
            "before_reset": pair(self.before_reset),
            "since_reset": self.since_reset,
            "proven": self.proven,
            "open": [
                [length, o.start, o.end, o.quantity, o.measured, o.interpolated]
                for length, o in self.open.items()
            ],
        }

    @classmethod
    def from_json(cls, data: dict) -> CounterState:
        def sample(key: str) -> Sample | None:
            return Sample(*data[key]) if data.get(key) else None

        return cls(
            last=sample("last"),
            pending=sample("pending"),
            open={row[0]: OpenInterval(*row[1:]) for row in data.get("open", [])},
            doubt=sample("doubt"),
            before_reset=sample("before_reset"),
            since_reset=data.get("since_reset", 0.0),
            proven=data.get("proven", 0),
        )


@dataclass(frozen=True, slots=True)
class Step:
    """What one sample did: the intervals it closed and what it found."""

    closed: dict[float, list[ClosedInterval]]
    events: list[CounterEvent] = field(default_factory=list)


def _noise(drop: float, level: float) -> bool:
    """A drop too small to be anything but register rounding (float32, scaling)."""
    return drop <= max(1e-9, abs(level) * 1e-6)


class _Judge:
    """One call of `advance`: the state, the counter, and what this sample produced."""

    def __init__(self, state: CounterState, counter: Counter) -> None:
        self.state = state
        self.counter = counter
        self.step = Step({length: [] for length in counter.lengths})

    def say(self, kind: str, detail: str) -> None:
        self.step.events.append(CounterEvent(kind, detail))

    def trust(self, to: Sample, delta: float | None, gap: bool = False) -> None:
        """Move the trusted value to `to`, spreading `delta` over the time since the last."""
        state, counter = self.state, self.counter
        last = state.last
        if delta is not None and state.before_reset is not None:
            delta, gap = self._after_reset(to, delta, gap)
        for length in counter.lengths:
            closed = self.step.closed[length]
            if last is None:
                roll(state.open, length, to.ts, counter.tz, closed)
            else:
                gapped = gap or to.ts - last.ts > counter.gap_limit
                spread(state.open, length, last.ts, to.ts, delta, gapped, counter.tz, closed)
        state.last = to

    def _after_reset(self, to: Sample, delta: float, gap: bool) -> tuple[float, bool]:
        """Back at the value before a reset: the low values were bad, not a new meter."""
        state = self.state
        before = state.before_reset
        assert before is not None
        if to.value >= before.value:
            delta = max(0.0, to.value - before.value - state.since_reset)
            self.say(
                "counter_glitch",
                f"back at {to.value:g} after values below {before.value:g}: "
                "they were bad readings, not a reset; counting resumed from the old value",
            )
            state.before_reset, state.since_reset, state.proven = None, 0.0, 0
            return delta, True
        state.since_reset += delta
        state.proven += 0 if _noise(delta, to.value) else 1
        if state.proven >= PROVEN:  # counting up from the new value: the reset was real
            state.before_reset, state.since_reset, state.proven = None, 0.0, 0
        return delta, gap

    def new_timeline(self, at: Sample, kind: str, why: str) -> None:
        """Close what is open and start over from `at`, which the next sample must confirm."""
        state = self.state
        for length, current in state.open.items():
            self.step.closed[length].append(close(current))
        state.open, state.last, state.doubt, state.before_reset = {}, None, None, None
        state.pending = at
        self.say(kind, why)


def advance(state: CounterState, sample: Sample, counter: Counter) -> Step:
    """Feed one good counter sample; returns the intervals it closed and what it found.

    Energy is applied one sample late, so intervals close one poll after their end.
    """
    judge = _Judge(state, counter)
    a, s, c = state.last, state.pending, sample
    if s is not None and c.ts <= s.ts:
        _clock_went_back(judge, c)
        return judge.step
    state.pending = c
    if s is None:
        return judge.step
    if a is None:
        _choose_baseline(judge, s, c)
        return judge.step
    if s.ts - a.ts > MAX_SPREAD:
        days = (s.ts - a.ts) / 86400
        judge.new_timeline(
            s,
            "counter_gap",
            f"silent for {days:.0f} days: the counter advanced {s.value - a.value:g} "
            "in that time, not placed in intervals",
        )
        state.pending = c
        _choose_baseline(judge, s, c)
        return judge.step
    rise = s.value - a.value
    if rise >= 0:  # progress, unless `c` falls back below `s` or the jump is impossible
        if a.value <= c.value < s.value and not _noise(s.value - c.value, s.value):
            judge.say("counter_glitch", f"{a.value:g} {s.value:g} {c.value:g}: spike dropped")
        elif counter.modulus and rise > counter.modulus / 2:
            judge.say("counter_glitch", f"{a.value:g} -> {s.value:g}: impossible jump dropped")
        else:
            judge.trust(s, rise)
    elif _noise(-rise, a.value):
        pass  # rounding below the trusted value: nothing to count, nothing to say
    elif c.value >= a.value:
        judge.say("counter_glitch", f"{a.value:g} {s.value:g} {c.value:g}: dip dropped")
    elif counter.modulus and -rise > counter.modulus / 2:
        judge.say("counter_rollover", f"{a.value:g} -> {s.value:g} past {counter.modulus:g}")
        judge.trust(s, rise + counter.modulus)
    else:
        judge.say("counter_reset", f"{a.value:g} -> {s.value:g}")
        if state.before_reset is None:
            state.before_reset, state.since_reset, state.proven = a, 0.0, 0
        judge.trust(s, None)
    return judge.step


def _choose_baseline(judge: _Judge, s: Sample, c: Sample) -> None:
    """The first trusted value: a sample the next one agrees with.

    When the second value falls below the first, one of them is wrong; the
    third tells which (`doubt` holds the first meanwhile).
    """
    state = judge.state
    d, state.doubt = state.doubt, None
    if d is not None and c.value >= d.value:  # `s` was the odd one out
        judge.trust(d, None)
    elif c.value >= s.value or _noise(s.value - c.value, s.value):
        judge.trust(s, None)
    else:
        state.doubt = s


def _clock_went_back(judge: _Judge, c: Sample) -> None:
    """A sample not newer than the pending one: a repeat, or the system clock stepped back."""
    state = judge.state
    a, s = state.last, state.pending
    assert s is not None
    if s.ts - c.ts <= 1.0:
        return  # the same poll twice, or jitter
    if a is None or c.ts > a.ts:  # only the pending sample was ahead: replace it
        judge.say("clock_backwards", f"clock went back {s.ts - c.ts:.0f}s; one sample dropped")
        state.pending = c
    elif a.ts - c.ts > MAX_CLOCK_STEP:
        judge.new_timeline(
            c,
            "clock_backwards",
            f"clock went back {(a.ts - c.ts) / 3600:.1f}h; counting restarts from here, "
            f"the advance since {a.value:g} is not placed in intervals",
        )
    # else: a short step behind the trusted sample: wait until the clock passes it
