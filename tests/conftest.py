"""Fixtures every test folder may use; the helpers behind them are in tests/fixtures."""

from tests.fixtures.clock import clock

__all__ = ["clock"]
