"""A mosquitto broker on loopback for every test of this folder, stopped by its PID after."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.mosquitto import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()
