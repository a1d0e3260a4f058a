"""A mosquitto broker on loopback for every test of this folder, stopped by its PID after,
and the buffer its destination `broker` reads."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from buffer import AsyncStore
from tests.fixtures.mosquitto import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    s = AsyncStore(tmp_path / "buffer.db", destinations={"broker": None})
    yield s
    s.close()
