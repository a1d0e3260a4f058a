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


def test_no_collection_while_held_and_as_before_after(restored) -> None:
    """Start-up runs `held`: the collector off within, and as it was after, also when
    start-up fails."""
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        with pytest.raises(OSError), garbage.held():
            assert not gc.isenabled()
            raise OSError("the buffer cannot be opened")
        assert gc.isenabled() == enabled
    gc.enable()
