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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow first (otherwise in collection order): in parallel they start
    at once on the workers, instead of last, with the suite waiting on them alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
