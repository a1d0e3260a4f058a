"""A kind of destination is its folder plus one registry line: a fake kind added that way to
a copy of the source is checked, published and delivered to like the shipped one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_sync.registry import KINDS
from tests.fixtures.source import changes, copy_with, python

REGISTRY = "cloud_sync/registry.py"
LINE = '    "cloud_sync.hj212.settings",\n'
FAKE_LINE = '    "cloud_sync.fake.settings",\n'
WITH_FAKE = LINE + FAKE_LINE

pytestmark = pytest.mark.timeout(120)

FAKE = {
    "cloud_sync/fake/__init__.py": '"""A fake uplink: every record appended to a file."""\n',
    "cloud_sync/fake/settings.py": '''\
"""What `fake:` holds, and the spec that makes the kind known."""

from __future__ import annotations

from pydantic import Field

from cloud_sync.spec import DestinationSpec
from config.base import DestinationBase, Strict


class FakeSettings(Strict):
    """A file to append records to."""

    path: str = Field(description="The file; ${VAR} is expanded.")
    every: float = Field(default=1.0, gt=0, description="Seconds between runs.")


class FakeDestination(DestinationBase):
    """Records appended to a file."""

    fake: FakeSettings


SPEC = DestinationSpec(
    key="fake",
    settings=FakeSettings,
    destination=FakeDestination,
    make="cloud_sync.fake.archive:make",
    summary="every record appended to a file, one JSON line each",
    path_fields=("path",),
)
''',
    "cloud_sync/fake/archive.py": '''\
"""The fake destination: what is pending for it, appended to its file."""

from __future__ import annotations

import json
from pathlib import Path

from buffer import AsyncStore
from cloud_sync.base import DestinationStatus, Identity
from cloud_sync.fake.settings import FakeSettings


class Archive:
    def __init__(self, name: str, settings: FakeSettings, identity: Identity) -> None:
        self.name = name
        self.path = Path(settings.path)
        self.header = {"gateway": identity.gateway, "factor_set": identity.factor_set}
        self.status = DestinationStatus()
        self._every = settings.every

    @property
    def every(self) -> float:
        return self._every

    @property
    def allowance(self) -> float:
        return 30.0

    def attach(self, store: AsyncStore) -> None:
        self.outbox = store.outbox(self.name)

    def stale(self) -> bool:
        return False

    async def deliver(self, *, deadline: float | None = None, last: bool = False) -> int:
        sent = 0
        while (batch := await self.outbox.pending_batch(100, self.header)) is not None:
            with self.path.open("a", encoding="utf-8") as out:
                for event in batch.events:
                    out.write(json.dumps(event) + "\\n")
                for interval in batch.intervals:
                    out.write(interval + "\\n")
            await self.outbox.finish_batch(batch.seq, "acked")
            sent += batch.size
            self.status.records_sent += batch.size
        return sent

    async def close(self) -> None:
        pass


def make(name: str, settings: FakeSettings, identity: Identity, *, setting: str) -> Archive:
    return Archive(name, settings, identity)
''',
}

HEAD = """\
gateway: {id: gw, enterprise_id: 91510100MA6123456W, region_code: "510100", industry_code: C3011}
buffer: {path: buffer.db}
sync: {url: "http://127.0.0.1:9/api/v1/batches", every: 1h}
destinations:
"""
GOOD = HEAD + "  - {name: archive, fake: {path: archive.jsonl}}\n"
BAD = HEAD + "  - name: archive\n    fake: {pth: archive.jsonl}\n"

# commits two intervals and an event, runs the archive's job by hand, stops
DELIVER = """\
import asyncio, time
from agent.daemon import Agent
from config.loader import load_config
from domain.records import Commit, EventRow, IntervalRow

async def main():
    agent = Agent(load_config("good.yaml", require_env=True))
    await agent.start()
    agent.scheduler.pause()
    rows = [IntervalRow("m1", 1.8e9 + 60 * n, 60.0, {"n": n}) for n in range(2)]
    event = EventRow(time.time(), "m1", "counter_reset", "warning", "a test event")
    await agent.commit("m1", Commit(intervals=rows, events=[event]))
    await agent._deliver("archive")
    await agent.stop()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The source with the fake kind added: its folder and its registry line."""
    return copy_with(tmp_path_factory.mktemp("src"), FAKE, REGISTRY, LINE, WITH_FAKE)


def test_the_copy_differs_only_by_the_folder_and_the_registry_line(copy: Path) -> None:
    """Adding a kind touches nothing outside its folder but one line of the registry."""
    changed, lines = changes(copy, REGISTRY)
    assert changed == sorted([REGISTRY, *FAKE])
    assert lines == ["+ " + FAKE_LINE]


def test_check_and_the_schema_know_the_new_kind(copy: Path) -> None:
    """`check` accepts a `fake:` destination and places a typo; `schema` publishes it."""
    (copy / "good.yaml").write_text(GOOD, encoding="utf-8")
    good = python(copy, "-m", "agent", "check", "-c", "good.yaml")
    assert (good.returncode, good.stdout) == (0, "good.yaml: ok (0 devices, 0 rules)\n")
    (copy / "bad.yaml").write_text(BAD, encoding="utf-8")
    bad = python(copy, "-m", "agent", "check", "-c", "bad.yaml")
    assert bad.returncode == 78
    assert "bad.yaml:6:12: destinations[0].fake.pth: unknown key (did you mean 'path'?)" in (
        bad.stderr
    )
    (copy / "none.yaml").write_text(HEAD + "  - {name: nowhere}\n", encoding="utf-8")
    none = python(copy, "-m", "agent", "check", "-c", "none.yaml")
    assert "a destination needs exactly one of http, hj212, fake" in none.stderr
    defs = json.loads(python(copy, "-m", "agent", "schema").stdout)["$defs"]
    assert set(defs["FakeSettings"]["properties"]) == {"path", "every"}


def test_the_agent_delivers_to_the_new_kind(copy: Path) -> None:
    """The agent makes, attaches, runs and stops it like any destination."""
    (copy / "good.yaml").write_text(GOOD, encoding="utf-8")
    (copy / "deliver.py").write_text(DELIVER, encoding="utf-8")
    result = python(copy, "deliver.py")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (copy / "archive.jsonl").read_text().splitlines()]
    assert [line.get("n") for line in lines if "n" in line] == [0, 1]
    assert [line["message"] for line in lines if "message" in line] == ["a test event"]


def test_the_shipped_kinds_are_registered() -> None:
    assert list(KINDS) == ["http", "hj212", "mqtt"]
