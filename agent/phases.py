"""When in its period each device is polled: a period's devices in slices (issue 16).

Polls started at one instant all hold their task, request, reply and readings at
once: 42 objects a meter at 1,000 meters, 2.1 KiB of RSS a meter (the peak stays
in pymalloc's pools; bench/meter_memory.py, 200 vs 1,000 meters). Slices of at
most SLICE devices, evenly spread over the period (no closer than MIN_SLICE_GAP),
hold one slice's polls at a time; each slice is an apscheduler job of its own
(agent/daemon.py `schedule`). Not more, smaller slices: 20 slices of 50 cost 25 %
more CPU at 1,000 meters than one burst (colder caches between small bursts, the
same calls each slower; cProfile A/B), 4 slices of 250 cost 5-10 %.

A device's slice comes from its name's place among the period's names, sorted, so
a slice's counter rows sit side by side in the buffer and the commit of its closes
touches few pages: a minute's close at 1,000 meters wrote 1.62 MB in 4 slices,
1.76 MB in one burst. That place is stable while the names are; a reload that
adds or removes devices may move a device once by less than a period (a turn a
little early or late, never lost). Up to SLICE devices poll at the period's start
as before. bench/RESULTS.md, "memory and CPU per meter (issue 16, branch meter16)",
has the figures.
"""

from __future__ import annotations

SLICE = 250  # devices whose polls start together
MIN_SLICE_GAP = 0.1  # s: at most 10 slices a second


def phases(period: float, names: list[str]) -> list[tuple[float, list[str]]]:
    """The devices of one polling period in slices, each with its offset into the period."""
    names = sorted(names)
    total = len(names)
    count = min(-(-total // SLICE), max(1, int(period / MIN_SLICE_GAP)))
    cut = [k * total // count for k in range(count + 1)]  # sizes differ by one at most
    return [(round(k * period / count, 6), names[cut[k] : cut[k + 1]]) for k in range(count)]
