"""The collector's settings after start-up and reload (agent/garbage.py)."""

from __future__ import annotations

import gc

import pytest

from agent import garbage


@pytest.fixture
def restored():
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_freezes_what_start_up_built_and_raises_the_young_threshold(restored) -> None:
    built = [{"meter": n} for n in range(1000)]  # start-up's objects, alive for good
    garbage.settle()
    assert gc.get_threshold() == garbage.THRESHOLDS
    assert gc.get_freeze_count() >= len(built)


def test_a_reload_lets_the_old_objects_go(restored) -> None:
    class Driver:  # a reference cycle, as a pymodbus client and its transport make
        def __init__(self) -> None:
            self.me = self

    old = Driver()
    garbage.settle()
    frozen = gc.get_freeze_count()
    del old  # a reload replaced it: only the collector can free a cycle
    garbage.settle()
    assert gc.get_freeze_count() < frozen
    assert not [o for o in gc.get_objects() if type(o) is Driver]


def test_the_collector_held_at_start_collects_again_once_settled(restored) -> None:
    """`hold` (the daemon's first line) to `settle` (after start-up): no collection, then
    collections as ever, with the thresholds raised."""
    garbage.hold()
    try:
        assert not gc.isenabled()
    finally:
        garbage.settle()
    assert gc.isenabled()
    assert gc.get_threshold() == garbage.THRESHOLDS
