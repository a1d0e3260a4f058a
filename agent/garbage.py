"""The garbage collector tuned for a daemon that holds thousands of meters' state.

Measured at 2,000 meters x 20 values (gc.callbacks in the running agent, 2026-12-07):
CPython's collector took 40 % of the agent's CPU. Each poll's readings stayed a
second in Pipeline.latest, long enough to be promoted to the oldest generation,
so a full collection ran every 2-3 s and walked every object the agent holds
(about 300,000: config, drivers, pymodbus clients, counter states), 0.16 s each.
(Since issue 16's memory work Pipeline.latest keeps floats in arrays, not the
readings (agent/latest.py), so a poll's readings die with the poll.)

- `gc.freeze()` once started (and after a reload): what start-up built lives as
  long as the process, so the collector stops walking it (210,000 objects at
  2,000 meters).
- Young collections every 5,000 allocations, not CPython's 700: fewer of a
  second's readings are still alive when one runs, so fewer reach the old
  generation.

Together: 13 % of the CPU in the collector at 2,000 meters instead of 40 %
(freeze alone with the default thresholds: 18 %; thresholds of 50,000: 14 %).
Reference cycles are still collected; only less often.

- No collection while the agent starts (`held`; config/loader.py's child and the
  unpickling of its result do the same): start-up keeps nearly all it makes (at
  5,000 meters 995 of 272,000 objects were garbage), yet the collector ran again and
  again over the growing heap: the 5,000 drivers took 0.23 s to make instead of
  0.08 s (measured 2026-12-07). `settle` follows at once.
"""

from __future__ import annotations

import gc

from config.loader import collector_paused

THRESHOLDS = (5000, 50, 10)  # young, middle, old (CPython's defaults: 700, 10, 10)


held = collector_paused
"""No cyclic collection within (start-up): the loader's pause, as it was after."""


def settle() -> None:
    """After start-up or a reload: collect once, freeze what is left, set the thresholds.

    Unfrozen first: a reload's old drivers, frozen before, must be collectable.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
