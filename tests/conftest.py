"""Fixtures every test folder may use (the helpers behind them are in tests/fixtures), and
the suite's settings for running in parallel (make test: 4 pytest-xdist workers).

Hypothesis's per-example deadline is off: with four workers on two cores an example
can wait for the CPU, and a slow example is load, not a bug. The search itself is
unchanged (each test's max_examples and strategies), and so is its example database
(.hypothesis/, safe for several processes to share).
"""

import pytest
from hypothesis import settings

from tests.fixtures.clock import clock

__all__ = ["clock"]

settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests marked slow first (otherwise in collection order): in parallel they start
    at once on the workers, instead of last, with the suite waiting on them alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    if config.getoption("loadgroup", False):  # a pytest-xdist worker under --dist loadgroup
        for item in items:
            _name_the_group(item)


def _name_the_group(item: pytest.Item) -> None:
    """`--dist loadgroup` keeps the tests of an xdist_group on one worker by the group name
    its node id ends with (`...::test_x@opcua-test_read`). pytest-xdist 3.8 appends it to
    `item._nodeid`, which pytest 9 no longer reads (a node's id is `item._id`, a NodeId):
    every group was silently scattered, each module-scoped OPC UA meter built on several
    workers. This appends it where pytest 9 reads it; with pytest 8, xdist's own does."""
    if not hasattr(item, "_id") or item.nodeid.rfind("@") > item.nodeid.rfind("]"):
        return  # pytest 8, or already named
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    if names:
        from _pytest.nodeid import NodeId  # pytest 9's

        item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(sorted(names))}")
