"""Several destinations from one buffer: each at its own pace, none holding up another.

The agent runs in process with its scheduler paused; each destination's job is
run by hand (the job the scheduler would run), so nothing waits for a clock.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from agent.cli import EX_CONFIG
from agent.daemon import Agent
from agent.reload import apply
from agent.status import status
from config.loader import load_config
from domain.errors import ConfigInvalid
from domain.records import Commit, EventRow, IntervalRow
from receiver import Receiver
from tests.fixtures.batches import series
from tests.fixtures.daemon import free_port

pytestmark = pytest.mark.timeout(60)
TOKEN = "t0k3n"
HEAD = """\
gateway: {id: gw-dest, enterprise_id: 91510100MA6123456W, region_code: "510100",
          industry_code: C3011}
buffer: {path: %(dir)s/buffer.db}
sync: {url: "%(central)s/api/v1/batches", token_file: %(dir)s/token, every: 1s}
"""


def config_text(tmp_path: Path, central: str, group: str, extra: str = "") -> str:
    return HEAD % {"dir": tmp_path, "central": central} + (
        "destinations:\n"
        f"  - name: group\n"
        f'    http: {{url: "{group}/api/v1/batches", token_file: {tmp_path}/token, every: 1s}}\n'
        + extra
    )


async def start(tmp_path: Path, text: str) -> Agent:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "agent.yaml").write_text(text)
    agent = Agent(load_config(tmp_path / "agent.yaml", require_env=True))
    await agent.start()
    agent.scheduler.pause()  # each delivery is run by hand below
    return agent


async def fill(agent: Agent, count: int, start: str = "2026-11-26T08:00:00+08:00") -> None:
    records = series("main_incomer", start, 1, count)
    rows = [
        IntervalRow("main_incomer", datetime.fromisoformat(r["start"]).timestamp(), 60.0, r)
        for r in records
    ]
    event = EventRow(time.time(), "main_incomer", "counter_reset", "warning", "a test event")
    await agent.commit("main_incomer", Commit(intervals=rows, events=[event]))


async def stored(receiver: Receiver) -> list[dict]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        reply = await client.get(f"{receiver.url}/api/v1/intervals", params={"gateway": "gw-dest"})
        return reply.json()["intervals"]


def intervals_in_buffer(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        return db.execute("SELECT count(*) FROM intervals").fetchone()[0]


@pytest.fixture
async def receivers(tmp_path: Path) -> AsyncIterator[tuple[Receiver, Receiver]]:
    central = Receiver(tmp_path / "central.db", TOKEN)
    group = Receiver(tmp_path / "group.db", TOKEN, port=free_port())
    central.start()
    yield central, group  # the group's receiver is started by the test that wants it
    central.stop()
    group.stop()


async def test_a_destination_that_is_down_holds_up_no_other_and_gets_everything_later(
    tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    """The central platform takes everything while the group's is down; the buffer keeps
    the records until the group's has them too, then sends each to it exactly once."""
    central, group = receivers
    agent = await start(tmp_path, config_text(tmp_path, central.url, group.url))
    try:
        await fill(agent, 30)
        await agent._deliver("sync")
        await agent._deliver("group")  # nothing listens there yet
        status = agent.destinations["group"].status
        down = (status.failures, status.last_success)
        owed = (await agent.store.backlog())["destinations"]
        # retention as if the 7 days of keeping were over: the group still needs them all
        await agent.store.prune(raw_before=time.time(), synced_before=time.time() + 1)
        kept = intervals_in_buffer(tmp_path)
        group.start()
        await agent._deliver("group")
        await agent._deliver("group")  # nothing more: no record is sent twice
        await agent.store.prune(raw_before=time.time(), synced_before=time.time() + 1)
        left = intervals_in_buffer(tmp_path)
        status = agent.snapshot()["destinations"]
    finally:
        await agent.stop()
    assert len(await stored(central)) == 30
    assert down[0] >= 1 and down[1] is None
    assert owed["sync"]["intervals"] == 0 and owed["group"]["intervals"] == 30
    assert owed["group"]["events"] >= 1
    assert kept == 30  # owed to the group: not pruned
    group_stored = await stored(group)
    assert len(group_stored) == 30
    assert len({(r["device"], r["start"]) for r in group_stored}) == 30
    assert left == 0  # every destination has them: retention may take them now
    assert status["group"]["records_sent"] >= 31 and status["sync"]["last_result"] == "stored"


async def test_an_age_limit_skips_what_is_older_and_a_new_destination_starts_at_the_end(
    tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    """`max_age` excuses a destination from old records; a destination added by a reload
    is sent what is committed from then on, not the history."""
    central, group = receivers
    group.start()
    recent = datetime.fromtimestamp(time.time() - 600).astimezone().isoformat()
    text = config_text(tmp_path, central.url, group.url).replace(
        "  - name: group\n", "  - name: group\n    max_age: 1h\n"
    )
    agent = await start(tmp_path, text)
    try:
        await fill(agent, 5)  # November 2026, long before the hour
        await fill(agent, 3, start=recent)
        await agent._deliver("group")
        late = Receiver(tmp_path / "late.db", TOKEN)
        late.start()
        try:
            added = text + (
                "  - name: late\n"
                f'    http: {{url: "{late.url}/api/v1/batches", token_file: {tmp_path}/token}}\n'
            )
            (tmp_path / "agent.yaml").write_text(added)
            await apply(agent, load_config(tmp_path / "agent.yaml", require_env=True))
            await agent._deliver("late")  # the history is not its own
            await fill(agent, 2, start=datetime.now().astimezone().isoformat())
            await agent._deliver("late")
            await agent._deliver("sync")
            late_stored = await stored(late)
        finally:
            late.stop()
    finally:
        await agent.stop()
    group_stored = await stored(group)  # the 3 recent, and the 2 later ones at the stop
    assert len(group_stored) == 5
    assert not [r for r in group_stored if r["start"].startswith("2026-11-26")]
    assert len(late_stored) == 2
    assert len(await stored(central)) == 10  # the central one has no age limit


def test_check_names_each_destination_once_and_knows_the_kinds(tmp_path: Path) -> None:
    """`sync` is the central platform's name; a name used twice and a misspelt kind are
    reported at their line, as `check` reports everything else."""
    text = config_text(tmp_path, "https://a.example", "https://b.example") + (
        "  - name: group\n"
        '    http: {url: "https://c.example/b"}\n'
        "  - name: sync\n"
        '    http: {url: "http://10.0.0.9/b"}\n'
        "  - name: epb\n"
        '    htp: {url: "https://d.example/b"}\n'
        "  - name: fast\n"
        "    max_age: 1m\n"
        '    http: {url: "https://e.example/b", every: 5m}\n'
        "  - name: twice\n"
        '    http: {url: "https://a.example/api/v1/batches"}\n'
    )
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigInvalid) as refused:
        load_config(path)
    problems = [str(p) for p in refused.value.problems]
    assert any("destinations[1].name: duplicate destination name 'group'" in p for p in problems)
    assert any("destinations[2].name: 'sync' is the central platform" in p for p in problems)
    assert any(
        "destinations[2].http.url: plain http to 10.0.0.9" in p for p in problems
    )  # the warning the central one gets, for each http destination
    assert any("destinations[3].htp: unknown key (did you mean 'http'?)" in p for p in problems), (
        problems
    )


def test_a_token_file_that_cannot_be_read_stops_the_start_at_its_field(tmp_path: Path) -> None:
    """Exit 78 (no restart loop) naming the destination's token_file, before anything is
    opened."""
    (tmp_path / "token").write_text(TOKEN)
    text = HEAD % {"dir": tmp_path, "central": "http://127.0.0.1:9"} + (
        "destinations:\n"
        "  - name: group\n"
        '    http: {url: "https://group.example/b", token_file: /nonexistent/t}\n'
    )
    (tmp_path / "agent.yaml").write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "agent", "run", "-c", str(tmp_path / "agent.yaml")],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == EX_CONFIG, run.stderr
    assert "destinations[0].http.token_file: cannot read /nonexistent/t" in run.stderr
    assert not (tmp_path / "buffer.db").exists()


async def test_a_reload_with_an_unreadable_token_file_keeps_every_destination_running(
    tmp_path: Path, receivers: tuple[Receiver, Receiver]
) -> None:
    """The new destination is made before anything changes: refused, the old ones run on."""
    central, group = receivers
    text = config_text(tmp_path, central.url, group.url)
    agent = await start(tmp_path, text)
    try:
        before = dict(agent.destinations)
        (tmp_path / "agent.yaml").write_text(
            text + '  - name: epb\n    http: {url: "https://epb.example/b", token_file: /no/t}\n'
        )
        with pytest.raises(ConfigInvalid) as refused:
            await apply(agent, load_config(tmp_path / "agent.yaml", require_env=True))
        after = dict(agent.destinations)
        await fill(agent, 2)
        await agent._deliver("sync")
    finally:
        await agent.stop()
    assert "destinations[1].http.token_file: cannot read /no/t" in str(refused.value)
    assert after == before  # the same objects: nothing was swapped
    assert len(await stored(central)) == 2


async def test_status_shows_what_each_destination_is_still_owed(
    tmp_path: Path, receivers: tuple[Receiver, Receiver], capsys: pytest.CaptureFixture[str]
) -> None:
    """`edge-agent status` counts each configured destination's backlog, not only sync's."""
    central, group = receivers
    agent = await start(tmp_path, config_text(tmp_path, central.url, group.url))
    try:
        await fill(agent, 30)
        await agent._deliver("sync")
        await agent._deliver("group")  # nothing listens there
        await agent._report()  # the status file, as the daemon writes it every 30 s
    finally:
        await agent.stop()
    loaded = load_config(tmp_path / "agent.yaml")
    capsys.readouterr()
    assert status(loaded, as_json=True) == 0
    owed = json.loads(capsys.readouterr().out)["backlog"]["destinations"]
    assert owed["sync"]["intervals"] == 0 and owed["group"]["intervals"] == 30
    assert status(loaded, as_json=False) == 0
    text = capsys.readouterr().out
    assert "backlog to group" in text and "last delivery to group" in text
