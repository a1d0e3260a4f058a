"""Reload and stop where the rules, the device events, the bounded buffer and the
lifecycle meet: each test here is a defect found when the three were merged.

The agent runs under time travel (tests/fixtures/clock.py): the test moves the wall
clock and the polls due run at once; outputs, meters and the uplink answer in real time."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent.daemon import Agent
from agent.demo import demo_meters
from agent.reload import apply
from config.loader import load_config
from domain.reading import Reading
from drivers.base import Driver
from drivers.modbus.settings import ModbusWrite
from drivers.modbus.simulator import MeterServer
from tests.fixtures.clock import Clock, ManualScheduler
from tests.fixtures.daemon import agent_yaml, free_port
from tests.fixtures.peers import StackLight, raw_server
from tests.fixtures.plant import config_text, events, start_agent

pytestmark = pytest.mark.timeout(60)
COIL_5 = ModbusWrite(device="stack_light", coil=5, value=True)


async def start(tmp_path: Path, text: str, token: str = "t") -> Agent:
    """The agent in process on `text`, its jobs run by the test's clock."""
    return await start_agent(tmp_path, text, token, scheduler=ManualScheduler())


async def reload(agent: Agent, path: Path, text: str) -> None:
    path.write_text(text)
    await apply(agent, load_config(path, require_env=True))


@contextlib.asynccontextmanager
async def meters() -> AsyncIterator[MeterServer]:
    """The demo's meters on one simulator, stopped after the agent the test runs on them."""
    server = MeterServer(list(demo_meters().values()))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def lit(tmp_path: Path, light: StackLight) -> AsyncIterator[tuple[Agent, str]]:
    """The agent on the demo meters with the rule and its stack light (config_text), and
    the config text it runs; the agent is stopped before the light and the meters."""
    async with meters() as server, raw_server(light) as port:
        text = config_text(tmp_path, server.port, port)
        agent = await start(tmp_path, text)
        try:
            yield agent, text
        finally:
            await agent.stop()


async def test_a_device_offline_and_fixed_by_a_reload_is_reported_back_online(
    tmp_path: Path, clock: Clock
) -> None:
    """The meter's address was wrong: it goes offline (one event); the technician fixes the
    port and reloads; the first good poll says it is back online, once."""
    async with meters() as server:
        good = agent_yaml(server.port, tmp_path, devices=1)
        agent = await start(tmp_path, good.replace(f"port: {server.port}", f"port: {free_port()}"))
        try:
            await clock.run_until(
                agent, lambda: any(e[1] == "device_offline" for e in events(tmp_path))
            )
            await reload(agent, tmp_path / "agent.yaml", good)
            await clock.run_until(
                agent, lambda: any(e[1] == "device_online" for e in events(tmp_path))
            )
        finally:
            await agent.stop()
    kinds = [e[1] for e in events(tmp_path) if e[1].startswith("device_")]
    assert kinds == ["device_offline", "device_online"]


async def test_a_reload_keeps_a_raised_rule_raised_and_clears_one_it_removes(
    tmp_path: Path, clock: Clock
) -> None:
    """A reload keeps the raised rule raised (no second alarm_raised); a reload that removes
    it clears it once: an alarm_cleared event, the stack light written off, no open alarm."""
    light = StackLight()
    path = tmp_path / "agent.yaml"
    async with lit(tmp_path, light) as (agent, text):
        await clock.run_until(agent, lambda: light.writes)
        await reload(agent, path, text.replace("severity: critical", "severity: warning"))
        await clock.run(agent, 1.0)
        still_open = agent.open_alarms()
        await reload(agent, path, text.split("rules:\n")[0])
        await clock.run_until(agent, lambda: light.writes[-1] == (5, 5, 0))
        after = agent.open_alarms()
    assert still_open == 1 and after == 0
    kinds = [e[1] for e in events(tmp_path) if e[1].startswith("alarm_")]
    assert kinds == ["alarm_raised", "alarm_cleared"]
    assert light.writes[0] == (5, 5, 0xFF00) and light.writes[-1] == (5, 5, 0)


def interval_rows(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "buffer.db") as db:
        return db.execute("SELECT count(*) FROM intervals WHERE device != 'x'").fetchone()[0]


async def test_a_full_buffer_holding_work_is_unblocked_by_raising_max_size_on_reload(
    tmp_path: Path, clock: Clock
) -> None:
    """The refusal tells the technician to raise buffer.max_size; a reload that does so
    lets the held intervals in (it used to keep the old cap until a restart), and
    /healthz's problem goes away."""
    from buffer import Store
    from domain.records import Commit, IntervalRow

    store = Store(tmp_path / "buffer.db")  # unsent intervals of an earlier outage
    pad = {"pad": "x" * 1500}
    store.commit(Commit(intervals=[IntervalRow("x", i * 60.0, 60.0, pad) for i in range(80)]))
    store.close()
    async with meters() as server:
        small = agent_yaml(server.port, tmp_path, devices=3).replace(
            "buffer:\n", "buffer:\n  max_size: 100kB\n", 1
        )
        agent = await start(tmp_path, small)
        try:
            await clock.run_until(agent, lambda: agent.unwritten, within=20)
            full = agent.problems()
            bigger = small.replace("max_size: 100kB", "max_size: 10MB")
            await reload(agent, tmp_path / "agent.yaml", bigger)
            await clock.run_until(
                agent, lambda: not agent.unwritten and interval_rows(tmp_path) > 0, within=20
            )
            healthy = agent.problems()
        finally:
            await agent.stop()
    assert any(p.startswith("buffer full (max_size 0.1 MB)") for p in full), full
    assert interval_rows(tmp_path) > 0 and healthy == []


async def test_stop_lets_the_actions_the_last_polls_asked_for_finish(
    tmp_path: Path, clock: Clock
) -> None:
    """A stop that comes just after a poll asked for a write (the task not yet running)
    waits for it: the slow stack light is switched on, not left as the rule was."""
    from agent.rules import Action

    light = StackLight(delay=0.3)
    async with meters() as server, raw_server(light) as port:
        agent = await start(tmp_path, config_text(tmp_path, server.port, port).split("rules:\n")[0])
        await clock.run(agent, 1.0)
        agent.pipeline.actions.append(Action("lamp-test", "stack_light", COIL_5, True))
        agent.start_actions()  # what a poll does after its ingest
        await agent.stop()
    assert light.writes == [(5, 5, 0xFF00)]
    assert "action_failed" not in [e[1] for e in events(tmp_path)]


async def test_stop_writes_held_device_events_and_reports_the_backlog_as_it_stops(
    tmp_path: Path, clock: Clock
) -> None:
    """A transition whose poll failed after seeing it is written at stop, not lost; the
    backlog the status file shows at stop is read at stop, not the last 30 s report's."""
    async with meters() as server:
        agent = await start(tmp_path, agent_yaml(server.port, tmp_path, devices=2))
        try:
            await clock.run_until(agent, lambda: interval_rows(tmp_path) >= 2, within=20)
            agent.health.event("main_incomer", "device_online", "info", "main_incomer: back")
        finally:
            await agent.stop()
    assert ("main_incomer", "device_online", "main_incomer: back") in events(tmp_path)
    assert agent.backlog is not None and agent.backlog["intervals"] == interval_rows(tmp_path)


async def test_a_reload_that_changes_the_output_device_lets_its_write_finish(
    tmp_path: Path, clock: Clock
) -> None:
    """A write under way when a reload changes the output's device is done before its
    driver is closed: it is not cut and reported failed."""
    from agent.rules import Action

    light = StackLight(delay=0.3)
    async with meters() as server, raw_server(light) as port:
        text = config_text(tmp_path, server.port, port).split("rules:\n")[0]
        agent = await start(tmp_path, text)
        try:
            await clock.run(agent, 1.0)
            agent.pipeline.actions.append(Action("lamp-test", "stack_light", COIL_5, True))
            agent.start_actions()  # what a poll does after its ingest
            await asyncio.sleep(0.1)  # the write is on the wire (real time: a slow PLC)
            changed = text.replace("unit: 1, timeout: 500ms", "unit: 1, timeout: 400ms")
            assert changed != text
            await reload(agent, tmp_path / "agent.yaml", changed)
            await clock.run(agent, 1.0)
        finally:
            await agent.stop()
    assert light.writes == [(5, 5, 0xFF00)]
    assert "action_failed" not in [e[1] for e in events(tmp_path)]


async def test_work_held_by_a_full_buffer_and_written_at_stop_is_no_problem_after_it(
    tmp_path: Path, clock: Clock
) -> None:
    """Room is made while the agent holds work; the stop writes it: the status it leaves
    says no problem (it said the buffer was full, with nothing held any more)."""
    from buffer import Store
    from domain.records import Commit, IntervalRow

    store = Store(tmp_path / "buffer.db")
    pad = {"pad": "x" * 1500}
    store.commit(Commit(intervals=[IntervalRow("x", i * 60.0, 60.0, pad) for i in range(80)]))
    store.close()
    async with meters() as server:
        text = agent_yaml(server.port, tmp_path, devices=3)
        agent = await start(tmp_path, text.replace("buffer:\n", "buffer:\n  max_size: 100kB\n", 1))
        try:
            await clock.run_until(agent, lambda: agent.unwritten, within=20)
            agent.scheduler.pause()  # no poll writes the held work before the stop does
            await clock.settle(agent)
            with sqlite3.connect(tmp_path / "buffer.db") as db:
                db.execute("DELETE FROM intervals WHERE device = 'x'")
            held = bool(agent.unwritten)
        finally:
            await agent.stop()
    assert held and interval_rows(tmp_path) > 0
    assert agent.problems() == []


async def test_a_reload_reads_a_rotated_ca_file_at_the_same_path(
    tmp_path: Path, clock: Clock
) -> None:
    """The platform's CA is replaced in place (the usual rotation) and the service reloaded:
    the uplink verifies with the new file (it kept the one read at start)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from receiver import Receiver
    from tests.fixtures.pki import Pki, issue, server_context, write_pem
    from tests.fixtures.uplink import TOKEN

    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = issue("plant CA 2027", ca_key, None, ca=True)
    write_pem(pki_dir / "server.pem", issue("central", server_key, (ca.subject, ca_key),
                                          ip="127.0.0.1"), server_key)  # fmt: skip
    pki = Pki(pki_dir / "x", pki_dir / "server.pem", pki_dir / "server.key", pki_dir, pki_dir)
    ca_file = tmp_path / "platform-ca.pem"
    write_pem(ca_file, issue("plant CA 2026", other_key, None, ca=True), other_key)
    with Receiver(tmp_path / "central.db", TOKEN, tls=server_context(pki)) as receiver:
        async with meters() as server:
            text = agent_yaml(server.port, tmp_path, devices=1)
            text = text.replace("http://127.0.0.1:9", receiver.url).replace(
                "sync:\n", f"sync:\n  ca_file: {ca_file}\n", 1
            )
            agent = await start(tmp_path, text, TOKEN)
            try:
                await clock.run_until(
                    agent,
                    lambda: (
                        "CERTIFICATE_VERIFY_FAILED" in agent.destinations["sync"].status.last_result
                    ),
                )
                write_pem(ca_file, ca, ca_key)
                await apply(agent, load_config(tmp_path / "agent.yaml", require_env=True))
                await clock.run_until(
                    agent,
                    lambda: agent.destinations["sync"].status.last_success is not None,
                    within=20,
                )
            finally:
                await agent.stop()
    assert agent.destinations["sync"].status.last_success is not None


async def test_status_shows_when_a_power_only_meter_was_last_committed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clock: Clock
) -> None:
    """A meter counted from power alone (no counter) has its last committed sample in the
    status table too, and no power figure shown as if it were a counter reading."""
    from agent.cli import main

    async with meters() as server:
        text = agent_yaml(server.port, tmp_path, devices=2).replace(
            "energy: {carrier: electricity, counter: energy_kwh}",
            "energy: {carrier: electricity, power: power_kw}",
        )
        assert "power: power_kw" in text
        agent = await start(tmp_path, text)
        try:
            await clock.run_until(agent, lambda: interval_rows(tmp_path) >= 4, within=20)
        finally:
            await agent.stop()
    assert main(["status", "-c", str(tmp_path / "agent.yaml")]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "press_line_2" in line)
    assert row.split()[-3] == "-" and not row.endswith("never")  # no counter, a commit time


async def test_a_raised_rule_moved_to_another_output_switches_the_old_one_off(
    tmp_path: Path, clock: Clock
) -> None:
    """The rule stays raised but now writes coil 6: coil 5 is written off, coil 6 on;
    still one alarm_raised and no alarm_cleared."""
    light = StackLight()
    async with lit(tmp_path, light) as (agent, text):
        await clock.run_until(agent, lambda: light.writes)
        moved = text.replace("coil: 5, value", "coil: 6, value")
        assert moved != text
        await reload(agent, tmp_path / "agent.yaml", moved)
        await clock.run_until(agent, lambda: {(5, 5, 0), (5, 6, 0xFF00)} <= set(light.writes))
        still_open = agent.open_alarms()
    assert {(5, 5, 0), (5, 6, 0xFF00)} <= set(light.writes) and still_open == 1
    assert light.writes[-1] != (5, 5, 0xFF00)
    kinds = [e[1] for e in events(tmp_path) if e[1].startswith("alarm_")]
    assert kinds == ["alarm_raised"]


async def test_a_buffer_error_in_the_last_sync_does_not_abort_the_stop(
    tmp_path: Path, clock: Clock
) -> None:
    """The buffer refuses the batch row the last sync needs (a SQLite error, injected with a
    trigger): the stop still closes the drivers and the buffer and returns."""
    async with meters() as server:
        agent = await start(tmp_path, agent_yaml(server.port, tmp_path, devices=1))
        try:
            await clock.run_until(agent, lambda: interval_rows(tmp_path) >= 1, within=20)
            with sqlite3.connect(tmp_path / "buffer.db") as db:
                db.execute("DELETE FROM batches")  # the next sync must assign a new batch
                db.execute(
                    "CREATE TRIGGER refuse BEFORE INSERT ON batches"
                    " BEGIN SELECT RAISE(FAIL, 'disk I/O error (injected)'); END"
                )
            agent.scheduler.pause()
            await clock.settle(agent)
        finally:
            await asyncio.wait_for(agent.stop(), 20)
    with pytest.raises(sqlite3.ProgrammingError):  # the buffer was closed
        agent.store.store.db.conn.execute("SELECT 1")


async def test_a_raised_rule_redefined_by_a_reload_is_judged_afresh(
    tmp_path: Path, clock: Clock
) -> None:
    """The raised rule now watches the press line: the incomer's alarm is cleared (its event
    says why, the light goes off) and the press line's figure raises the rule anew, with
    its own event and write; one alarm open, the new one."""
    light = StackLight()
    async with lit(tmp_path, light) as (agent, text):
        await clock.run_until(agent, lambda: light.writes)
        moved = text.replace("    device: main_incomer\n", "    device: press_line_2\n")
        assert moved != text
        await reload(agent, tmp_path / "agent.yaml", moved)
        await clock.run_until(agent, lambda: len(light.writes) >= 3)
        still_open = agent.open_alarms()
    alarms = [(e[0], e[1], e[2]) for e in events(tmp_path) if e[1].startswith("alarm_")]
    assert [(device, kind) for device, kind, _ in alarms] == [
        ("main_incomer", "alarm_raised"),
        ("main_incomer", "alarm_cleared"),
        ("press_line_2", "alarm_raised"),
    ]
    assert alarms[1][2] == "rule incomer-on cleared: redefined by a reload"
    assert light.writes == [(5, 5, 0xFF00), (5, 5, 0), (5, 5, 0xFF00)] and still_open == 1


async def test_a_rule_whose_limit_a_reload_changes_starts_its_wait_again(
    tmp_path: Path, clock: Clock
) -> None:
    """A rule past its limit and waiting out its `for` is redefined with another limit, still
    passed: the wait starts again at the reload, it does not count the old limit's time."""
    async with meters() as server:
        base = agent_yaml(server.port, tmp_path, devices=1) + (
            "rules:\n  - {name: big, device: main_incomer, quantity: power_kw, above: 1,"
            " for: 10s}\n"
        )
        agent = await start(tmp_path, base)
        try:
            await clock.run(agent, 6.0)
            await reload(agent, tmp_path / "agent.yaml", base.replace("above: 1,", "above: 2,"))
            await clock.run(agent, 6.0)  # 12 s past 1 kW, only 6 s past 2 kW
            early = agent.open_alarms()
            await clock.run(agent, 5.0)
            late = agent.open_alarms()
        finally:
            await agent.stop()
    assert (early, late) == (0, 1)
    assert [e[1] for e in events(tmp_path) if e[1].startswith("alarm_")] == ["alarm_raised"]


class Closing:
    """A device's real driver, its close counted; with `fails`, the close raises after
    releasing the link (a driver whose link was torn down under it)."""

    def __init__(self, driver: Driver, fails: bool) -> None:
        self.driver, self.device, self.fails, self.closes = driver, driver.device, fails, 0

    def describe(self) -> str:
        return self.driver.describe()

    async def read(self) -> list[Reading]:
        return await self.driver.read()

    async def close(self) -> None:
        self.closes += 1
        await self.driver.close()
        if self.fails:
            raise OSError(9, "Bad file descriptor")


def close_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "closing its driver failed" in r.message]


async def test_a_driver_that_fails_to_close_does_not_stop_the_stop(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The first driver's close raises: it is logged once, the next driver is still closed,
    the buffer too, and the stop returns."""
    async with meters() as server:
        agent = await start(tmp_path, agent_yaml(server.port, tmp_path, devices=2))
        broken = Closing(agent.drivers["main_incomer"], fails=True)
        sound = Closing(agent.drivers["press_line_2"], fails=False)
        agent.drivers.update(main_incomer=broken, press_line_2=sound)
        await clock.run(agent, 1.0)
        await asyncio.wait_for(agent.stop(), 20)
    assert (broken.closes, sound.closes) == (1, 1)
    with pytest.raises(sqlite3.ProgrammingError):  # the buffer was closed: the stop ran through
        agent.store.store.db.conn.execute("SELECT 1")
    assert close_failures(caplog) == [
        "main_incomer: closing its driver failed (OSError(9, 'Bad file descriptor'));"
        " going on without it"
    ]


async def test_a_driver_that_fails_to_close_does_not_stop_the_reload(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload replaces the incomer's driver, whose close raises: logged once, the reload
    completes and the new driver polls."""
    async with meters() as server:
        text = agent_yaml(server.port, tmp_path, devices=2)
        agent = await start(tmp_path, text)
        try:
            broken = Closing(agent.drivers["main_incomer"], fails=True)
            agent.drivers["main_incomer"] = broken
            await clock.run(agent, 1.0)
            changed = text.replace("unit: 1, timeout: 1s", "unit: 1, timeout: 2s")
            assert changed != text
            await reload(agent, tmp_path / "agent.yaml", changed)
            polls = agent.health.devices["main_incomer"].polls
            await clock.run(agent, 1.0)
            fresh, polled = agent.drivers["main_incomer"], agent.health.devices["main_incomer"]
        finally:
            await agent.stop()
    assert broken.closes == 1 and fresh is not broken
    assert polled.polls > polls and polled.failing_since == 0
    assert agent.loaded.config.devices[0].modbus_tcp.timeout == 2.0
    assert len(close_failures(caplog)) == 1
